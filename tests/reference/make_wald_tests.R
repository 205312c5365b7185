# car's Anova (Type II and III Wald chi-square tests) and linearHypothesis on glmmTMB fits (at
# the optimum, with the covariance of its joint Hessian) and glmer fits, for
# tests/test_wald.py. usage: Rscript make_wald_tests.R  (in tests/reference; writes wald_tests.json)
suppressMessages({library(lme4); library(glmmTMB); library(car); library(jsonlite)})
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
cbpp <- read.csv("../../src/glmm_binomial/data/cbpp.csv", stringsAsFactors = TRUE)
cbpp$period <- factor(cbpp$period)
models <- list(
  list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       hypotheses = list("period2 = period3", c("period2 = 0", "period3 = 0", "period4 = 0"),
                         "period2 + period3 - 2 * period4 = 0.5")),
  list(data = "contraception", formula = "use ~ age * urban + livch + (1 | district)",
       hypotheses = list("livch1 = livch2", c("livch2 = livch1", "age = 0"),
                         "age + age:urbanY = 0")),
  list(data = "contraception",
       formula = "use ~ age * livch + urban + I(age^2) + (1 | district)",
       hypotheses = list("(Intercept) = -1", "3 * age:livch1 = age:livch2 - urbanY")),
  list(data = "contraception", formula = "use ~ urban:livch + age + (1 + urban | district)",
       hypotheses = list("urbanY:livch1 = urbanY:livch0"))
)
tables <- function(fit, hypotheses, tmb = FALSE) {
  two <- Anova(fit, type = "II")
  three <- Anova(fit, type = "III")
  lh <- lapply(hypotheses, function(h) {
    out <- if (tmb) linearHypothesis(fit, h, coef. = fixef(fit)$cond, vcov. = vcov(fit)$cond)
           else linearHypothesis(fit, h)
    list(hypothesis = h, chisq = out$Chisq[2], df = out$Df[2], p = out[["Pr(>Chisq)"]][2])
  })
  list(type2 = list(terms = rownames(two), chisq = two$Chisq, df = two$Df, p = two[["Pr(>Chisq)"]]),
       type3 = list(terms = rownames(three), chisq = three$Chisq, df = three$Df,
                    p = three[["Pr(>Chisq)"]]),
       hypotheses = lh, loglik = as.numeric(logLik(fit)))
}
out <- lapply(models, function(m) {
  data <- if (m$data == "cbpp") cbpp else contraception
  f <- as.formula(m$formula)
  tmb <- glmmTMB(f, data = data, family = binomial)
  mer <- glmer(f, data = data, family = binomial)
  list(data = m$data, formula = m$formula, fixef = as.list(fixef(tmb)$cond),
       glmmTMB = tables(tmb, m$hypotheses, tmb = TRUE), glmer = tables(mer, m$hypotheses))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE, na = "null", auto_unbox = TRUE), "wald_tests.json")
