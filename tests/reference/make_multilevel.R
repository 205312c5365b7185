# Fit the multilevel reference models with glmmTMB and glmer (Laplace) and write
# multilevel.json: per model, per engine, fixef, the covariance matrix of each random term,
# logLik. usage: Rscript make_multilevel.R  (in tests/reference, after make_multilevel.py)
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
nested <- read.csv("multilevel_nested.csv")
crossed <- read.csv("multilevel_crossed.csv")
for (col in c("region", "comm", "mom")) nested[[col]] <- factor(nested[[col]])
for (col in c("a", "b")) crossed[[col]] <- factor(crossed[[col]])
models <- list(
  list(data = "multilevel_nested.csv", frame = nested, formula = "y ~ x1 + (1 | region/comm/mom)"),
  list(data = "multilevel_nested.csv", frame = nested,
       formula = "y ~ x1 + (1 | region) + (1 | region:comm) + (0 + x1 | region:comm) + (1 | region:comm:mom)"),
  list(data = "multilevel_crossed.csv", frame = crossed, formula = "y ~ x1 + (1 | a) + (1 | b)")
)
covs <- function(vc) lapply(vc, function(m) unname(as.matrix(m)[, , drop = FALSE]))
out <- lapply(models, function(m) {
  fo <- as.formula(m$formula)
  tmb <- glmmTMB(fo, data = m$frame, family = binomial,
                 control = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14)))
  lme <- glmer(fo, data = m$frame, family = binomial,
               control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
  vt <- VarCorr(tmb)$cond
  vl <- VarCorr(lme)
  list(data = m$data, formula = m$formula, nobs = nobs(lme),
       glmmTMB = list(version = as.character(packageVersion("glmmTMB")), fixef = as.list(fixef(tmb)$cond),
                      cov = lapply(setNames(names(vt), names(vt)), function(g) unname(as.matrix(vt[[g]]))),
                      logLik = as.numeric(logLik(tmb))),
       glmer = list(version = as.character(packageVersion("lme4")), fixef = as.list(fixef(lme)),
                    cov = lapply(setNames(names(vl), names(vl)), function(g) unname(as.matrix(vl[[g]]))),
                    theta = unname(getME(lme, "theta")), logLik = as.numeric(logLik(lme))))
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "multilevel.json")
