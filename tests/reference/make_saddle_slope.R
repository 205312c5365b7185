# Reference fits of random slopes whose intercept SD is small and perfectly correlated with
# the slope (tests/test_optimize.py):
#   Rscript make_saddle_slope.R > saddle_shifted_slope.json
# saddle_shifted_slope.csv (make_valley_data.py) has x = 10 x0 + 3; the same model on x0 =
# (x - 3) / 10 has the same maximum likelihood (an affine change of a random slope's covariate
# leaves an unstructured covariance's fit unchanged). saddle_crossed_slope.csv: binomial
# counts, cbind(y, m - y) ~ x + (1 + x | g) + (1 | h).
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
d <- read.csv("saddle_shifted_slope.csv")
d$g <- factor(d$g)
d$f <- factor(d$f)
d$x0 <- (d$x - 3) / 10
loglik <- function(expr) {
  fitted <- tryCatch(suppressWarnings(suppressMessages(expr)), error = function(e) e)
  if (inherits(fitted, "error")) return(list(loglik = NULL, error = conditionMessage(fitted)))
  list(loglik = as.numeric(logLik(fitted)), error = NULL)
}
fits <- function(f) list(
  glmer = loglik(glmer(f, data = d, family = binomial)),
  glmmTMB = loglik(glmmTMB(f, data = d, family = binomial))
)
crossed_fits <- function() {
  c2 <- read.csv("saddle_crossed_slope.csv")
  c2$g <- factor(c2$g)
  c2$h <- factor(c2$h)
  f <- cbind(y, m - y) ~ x + (1 + x | g) + (1 | h)
  list(
    glmer = loglik(glmer(f, data = c2, family = binomial)),
    glmmTMB = loglik(glmmTMB(f, data = c2, family = binomial))
  )
}
# Two sets of a metamorphic sweep (bench/metamorphic.py, slope:41 and crossed_slope:42) with
# x shifted as the sweep shifts it (10 x + 3): our search had ended where the free Hessian is
# flat to rounding (the first) or at a saddle next to a flat direction (the second).
shifted_fits <- function(file, f, factors) {
  d2 <- read.csv(file)
  for (name in factors) d2[[name]] <- factor(d2[[name]])
  d2$x <- 10 * d2$x + 3
  list(
    data = file, model = deparse(f), x = "10 x + 3",
    glmer = loglik(glmer(f, data = d2, family = binomial)),
    glmmTMB = loglik(glmmTMB(f, data = d2, family = binomial))
  )
}
cat(toJSON(list(
  r = R.version.string, lme4 = as.character(packageVersion("lme4")),
  glmmTMB = as.character(packageVersion("glmmTMB")),
  data = "saddle_shifted_slope.csv",
  shifted = c(list(model = "y ~ x + f + (1 + x | g)"), fits(y ~ x + f + (1 + x | g))),
  unshifted = c(list(model = "y ~ x0 + f + (1 + x0 | g)"), fits(y ~ x0 + f + (1 + x0 | g))),
  crossed = c(
    list(data = "saddle_crossed_slope.csv", model = "cbind(y, m - y) ~ x + (1 + x | g) + (1 | h)"),
    crossed_fits()
  ),
  flat = shifted_fits("flat_slope.csv", y ~ x + f + (1 + x | g), c("f", "g")),
  crossed_flat = shifted_fits(
    "saddle_crossed_slope_flat.csv", cbind(y, m - y) ~ x + (1 + x | g) + (1 | h), c("g", "h")
  )
), auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), "\n")
