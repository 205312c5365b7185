# Profile-likelihood intervals (95%) of cbpp fitted by adaptive Gauss-Hermite quadrature,
# nAGQ = 5 and 25, from lme4's confint(method = "profile") (rows .sig01, then the fixed
# effects). usage: Rscript make_agq_profile.R cbpp.csv > agq_profile.json
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv(commandArgs(TRUE)[1]); d$herd <- factor(d$herd); d$period <- factor(d$period)
one <- function(n) {
  m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = d,
             family = binomial, nAGQ = n)
  ci <- suppressMessages(confint(m, method = "profile"))
  list(nAGQ = n, parameter = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
}
out <- list(lme4 = as.character(packageVersion("lme4")), fits = list(one(5), one(25)))
cat(toJSON(out, digits = NA, auto_unbox = TRUE), "\n")
