# car's vif() (generalized variance inflation factors from the fixed effects' correlations) of
# glmer fits, for tests/test_collinearity.py.
# usage: Rscript make_vif.R  (in tests/reference; writes vif.json, about 10 s)
suppressMessages({library(lme4); library(car); library(jsonlite)})
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
formulas <- c("use ~ age * urban + livch + (1 | district)",
              "use ~ age + I(age^2) + urban + livch + (1 + urban | district)",
              "use ~ poly(age, 2) + urban * livch + (1 | district)")
out <- lapply(formulas, function(f) {
  fit <- glmer(as.formula(f), data = contraception, family = binomial, control = control)
  v <- vif(fit)
  if (is.null(dim(v))) v <- cbind(GVIF = v, Df = 1, v)
  list(formula = f, terms = rownames(v), gvif = unname(v[, 1]), df = unname(v[, 2]),
       scaled = unname(v[, 3]), loglik = as.numeric(logLik(fit)))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE), "vif.json")
