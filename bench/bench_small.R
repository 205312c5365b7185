# lme4's glmer on one case of bench/bench_small.py, timed inside R (no R start-up counted):
#   Rscript bench/bench_small.R DATA.csv "FORMULA" REPEATS OUT.json FACTOR,COLUMNS
# One untimed fit first (as the Python engines' warm-up), then REPEATS timed fits; writes the
# elapsed seconds of each and the logLik.
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], stringsAsFactors = TRUE)
for (column in strsplit(args[5], ",", fixed = TRUE)[[1]]) data[[column]] <- factor(data[[column]])
formula <- as.formula(args[2])
repeats <- as.integer(args[3])
fit <- function() glmer(formula, data = data, family = binomial)
first <- suppressWarnings(suppressMessages(fit()))
seconds <- numeric(repeats)
for (i in seq_len(repeats)) {
  started <- proc.time()[["elapsed"]]
  suppressWarnings(suppressMessages(fit()))
  seconds[i] <- proc.time()[["elapsed"]] - started
}
jsonlite::write_json(
  list(seconds = seconds, loglik = as.numeric(logLik(first))),
  args[4], digits = NA, auto_unbox = TRUE
)
