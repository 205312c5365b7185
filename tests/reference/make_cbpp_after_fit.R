# Residuals, fitted values, coef(), scaled residuals and the correlation of fixed effects of the
# cbpp Laplace fit, and conditional covariances of the correlated contraception slope (issue 10).
# usage: Rscript make_cbpp_after_fit.R DATA_DIR > cbpp_after_fit.json
suppressMessages({library(lme4); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
d <- read.csv(file.path(dir, "cbpp.csv")); d$herd <- factor(d$herd); d$period <- factor(d$period)
ctl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = d, family = binomial, control = ctl)
s <- summary(m)
c <- read.csv(file.path(dir, "contraception.csv"), stringsAsFactors = TRUE)
c$district <- factor(c$district); c$livch <- factor(c$livch)
m2 <- glmer(use ~ age + urban + livch + (1 + urban | district), data = c, family = binomial, control = ctl)
re2 <- ranef(m2, condVar = TRUE)$district
pv <- attr(re2, "postVar")
out <- list(
  lme4 = as.character(packageVersion("lme4")),
  logLik = as.numeric(logLik(m)),
  resid = list(deviance = unname(residuals(m, "deviance")), pearson = unname(residuals(m, "pearson")),
               response = unname(residuals(m, "response")), working = unname(residuals(m, "working"))),
  fitted = unname(fitted(m)),
  scaled_residuals = unname(quantile(residuals(m, "pearson", scaled = TRUE))),
  coef_herd = data.frame(level = rownames(coef(m)$herd), coef(m)$herd, check.names = FALSE),
  fixef_correlation = unname(as.matrix(cov2cor(vcov(m)))),
  slope_logLik = as.numeric(logLik(m2)),
  slope_modes_first3 = unname(as.matrix(re2[1:3, ])),
  slope_postvar_first3 = lapply(1:3, function(j) unname(pv[, , j])))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, dataframe = "rows", matrix = "rowmajor"), "\n")
