# lme4's drop1(model, test = "Chisq") (single term deletions by refits) for tests/test_inference.py.
# usage: Rscript make_drop1.R  (in tests/reference; writes drop1.json)
suppressMessages({library(lme4); library(jsonlite)})
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
cbpp_fit <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
models <- list(
  list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       fit = cbpp_fit),
  list(data = "contraception", formula = "use ~ age * urban + livch + (1 | district)",
       fit = glmer(use ~ age * urban + livch + (1 | district), contraception, binomial)),
  list(data = "contraception", formula = "use ~ age * urban + livch + I(age^2) + (1 | district)",
       fit = glmer(use ~ age * urban + livch + I(age^2) + (1 | district), contraception, binomial))
)
out <- lapply(models, function(m) {
  table <- drop1(m$fit, test = "Chisq")
  list(data = m$data, formula = m$formula, terms = rownames(table), npar = table$npar,
       AIC = table$AIC, LRT = table$LRT, p = table[["Pr(Chi)"]], loglik = as.numeric(logLik(m$fit)))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE, na = "null"), "drop1.json")
