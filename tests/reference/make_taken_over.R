# Reference fits of a probit random-slope model whose x slope's own SD is at zero
# (tests/test_optimize.py):
#   Rscript make_taken_over.R > slope3_probit_taken_over.json
# slope3_probit_taken_over.csv (bench/metamorphic.py --only slope3_probit:607): the model
# y ~ x + x2 + (1 + x + x2 | g) with the probit link, on x and on 10 x + 3 (the same maximum
# likelihood: an affine change of a random slope's covariate leaves an unstructured
# covariance's fit unchanged).
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
d <- read.csv("slope3_probit_taken_over.csv")
d$g <- factor(d$g)
loglik <- function(expr) {
  fitted <- tryCatch(suppressWarnings(suppressMessages(expr)), error = function(e) e)
  if (inherits(fitted, "error")) return(list(loglik = NULL, error = conditionMessage(fitted)))
  list(loglik = as.numeric(logLik(fitted)), error = NULL)
}
f <- y ~ x + x2 + (1 + x + x2 | g)
fits <- function(data) list(
  glmer = loglik(glmer(f, data = data, family = binomial(link = "probit"))),
  glmmTMB = loglik(glmmTMB(f, data = data, family = binomial(link = "probit")))
)
shifted <- d
shifted$x <- 10 * d$x + 3
out <- list(
  versions = list(
    R = paste(R.version$major, R.version$minor, sep = "."),
    lme4 = as.character(packageVersion("lme4")),
    glmmTMB = as.character(packageVersion("glmmTMB"))
  ),
  model = "y ~ x + x2 + (1 + x + x2 | g)",
  link = "probit",
  x = fits(d),
  shifted_x = fits(shifted)
)
cat(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), "\n")
