# Fit each case of a manifest with lme4::glmer and glmmTMB; one JSON line per case and engine.
# usage: Rscript against_r.R MANIFEST.json OUT.jsonl
# The manifest (bench/against_r.py writes it) lists csv, formula (lme4 syntax; glmmTMB's
# structured terms ar1/cs/us/diag as written), link, n_agq, family (binomial or betabinomial)
# and which engines apply. logLik is each engine's own (the Laplace or AGQ logLik, binomial
# constants included); warnings and convergence codes are recorded, not judged.
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
a <- commandArgs(TRUE)
cases <- fromJSON(a[1], simplifyDataFrame = FALSE)
out <- file(a[2], "a")  # appended: bench/against_r.py resumes an interrupted run
run <- function(expr) {
  warns <- character(0)
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) e),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) invokeRestart("muffleMessage"))  # isSingular is recorded instead
  list(value = value, warnings = warns)
}
for (case in cases) {
  d <- read.csv(case$csv, stringsAsFactors = TRUE)
  for (col in c("g", "h", "a", "b")) d[[col]] <- factor(d[[col]])
  fo <- as.formula(case$formula)
  fam <- binomial(link = case$link)
  for (engine in case$engines) {
    t0 <- proc.time()[["elapsed"]]
    if (engine == "glmer") {
      r <- run(glmer(fo, data = d, family = fam, nAGQ = case$n_agq))
    } else {
      tfam <- if (case$family == "betabinomial") betabinomial(link = case$link) else fam
      r <- run(glmmTMB(fo, data = d, family = tfam))
    }
    rec <- list(name = case$name, engine = engine, seconds = proc.time()[["elapsed"]] - t0,
                warnings = r$warnings)
    if (inherits(r$value, "error")) {
      rec$error <- conditionMessage(r$value)
    } else {
      m <- r$value
      rec$logLik <- as.numeric(logLik(m))
      if (engine == "glmer") {
        rec$singular <- isSingular(m)
        rec$conv <- m@optinfo$conv$lme4$messages
      } else {
        rec$conv <- m$fit$convergence
        rec$pdHess <- isTRUE(m$sdr$pdHess)
      }
    }
    writeLines(toJSON(rec, auto_unbox = TRUE, digits = NA, null = "null"), out)
    flush(out)
  }
}
close(out)
