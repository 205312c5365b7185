# Reference fits of two nearly singular random-slope models (tests/test_optimize.py):
#   Rscript make_polar_valley.R > polar_valley.json
# The data (polar_valley_k2.csv, polar_valley_k3.csv) are simulated binomial counts of 1-3
# trials with a random intercept SD of 0 and random slopes; the fits' intercept SDs are near
# zero, so the correlations are hardly identified.
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
cases <- list(
  list(data = "polar_valley_k2.csv", model = "cbind(y, f) ~ x + x2 + (1 + x | g)"),
  list(data = "polar_valley_k3.csv", model = "cbind(y, f) ~ x + x2 + (1 + x + x2 | g)")
)
loglik <- function(expr) {
  fitted <- tryCatch(suppressWarnings(suppressMessages(expr)), error = function(e) e)
  if (inherits(fitted, "error")) return(list(loglik = NULL, error = conditionMessage(fitted)))
  list(loglik = as.numeric(logLik(fitted)), error = NULL)
}
out <- lapply(cases, function(case) {
  d <- read.csv(case$data)
  d$g <- factor(d$g)
  f <- as.formula(case$model)
  list(
    data = case$data, model = case$model,
    glmer = loglik(glmer(f, data = d, family = binomial)),
    glmmTMB = loglik(glmmTMB(f, data = d, family = binomial))
  )
})
cat(toJSON(list(
  r = R.version.string, lme4 = as.character(packageVersion("lme4")),
  glmmTMB = as.character(packageVersion("glmmTMB")), cases = out
), auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), "\n")
