# lmtest's dwtest(r ~ 1, order.by = time) and ape's Moran.I(r, 1 / distance) on seeded uniform
# "residuals", as DHARMa's testTemporalAutocorrelation and testSpatialAutocorrelation call them,
# for tests/test_autocorrelation.py. usage: Rscript make_autocorrelation.R (in tests/reference;
# writes autocorrelation.json, seconds)
suppressMessages({library(lmtest); library(ape); library(jsonlite)})
set.seed(20261206)
cases <- list()
for (n in c(5, 12, 40, 99, 100, 250)) {
  r <- runif(n)
  if (n %in% c(40, 250)) r <- pmin(pmax(r + 0.4 * sin(seq_len(n) / 4), 0.001), 0.999)
  time <- if (n %in% c(40, 250)) seq_len(n) * 2.0 else sample(n) + 0.5
  x <- round(runif(n, 0, 10), 3)
  y <- round(runif(n, 0, 10), 3)
  if (n %in% c(40, 250)) r <- pmin(pmax(r + 0.05 * x, 0.001), 0.999)
  temporal <- lapply(c("two.sided", "greater", "less"), function(a) {
    out <- dwtest(r ~ 1, order.by = time, alternative = a)
    list(alternative = a, statistic = unname(out$statistic), p = out$p.value)
  })
  distance <- as.matrix(dist(cbind(x, y)))
  weight <- 1 / distance
  diag(weight) <- 0
  spatial <- lapply(c("two.sided", "greater", "less"), function(a) {
    out <- Moran.I(r, weight, alternative = a)
    list(alternative = a, observed = out$observed, expected = out$expected, sd = out$sd,
         p = out$p.value)
  })
  cases[[length(cases) + 1]] <- list(n = n, residuals = r, time = time, x = x, y = y,
                                     temporal = temporal, spatial = spatial)
}
writeLines(toJSON(cases, digits = NA, pretty = TRUE, auto_unbox = TRUE), "autocorrelation.json")
