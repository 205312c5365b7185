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
shifted_fits <- function(file, f, factors, family = binomial()) {
  d2 <- read.csv(file)
  for (name in factors) d2[[name]] <- factor(d2[[name]])
  d2$x <- 10 * d2$x + 3
  list(
    data = file, model = deparse(f), x = "10 x + 3", link = family$link,
    glmer = loglik(glmer(f, data = d2, family = family)),
    glmmTMB = loglik(glmmTMB(f, data = d2, family = family))
  )
}
# Two metamorphic sweep sets with three columns (slope3:182, slope3:215). The first has a
# rank-2 optimum whose x slope's own SD is small (2e-3): our search had ended with it at zero
# and x2's slope in the third column, unverified (the free Hessian nearly singular). On the
# second our search (and glmer's) had ended with the intercept SD at zero and its column's
# other entries turned into the second column, 7.8e-3 below the optimum in logLik. Two more
# (slope3_probit:223, slope3_counts:344) had ended unverified near the optimum: a flat
# direction next to an SD held at zero, and a valley whose Newton step overshoots.
plain_fits <- function(file, f, factors, family = binomial()) {
  d2 <- read.csv(file)
  for (name in factors) d2[[name]] <- factor(d2[[name]])
  list(
    data = file, model = deparse(f), link = family$link,
    glmer = loglik(glmer(f, data = d2, family = family)),
    glmmTMB = loglik(glmmTMB(f, data = d2, family = family))
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
  ),
  rotated = plain_fits("slope3_rotated.csv", y ~ x + x2 + (1 + x + x2 | g), c("g")),
  turned = plain_fits("slope3_turned.csv", y ~ x + x2 + (1 + x + x2 | g), c("g")),
  turned_shifted = shifted_fits("slope3_turned.csv", y ~ x + x2 + (1 + x + x2 | g), c("g")),
  probit_flat = plain_fits(
    "slope3_probit_flat.csv", y ~ x + x2 + (1 + x + x2 | g), c("g"), binomial(link = "probit")
  ),
  counts_valley = plain_fits(
    "slope3_counts_valley.csv", cbind(y, m - y) ~ x + x2 + (1 + x + x2 | g), c("g")
  )
), auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), "\n")
