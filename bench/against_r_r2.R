# performance's r2_nakagawa and icc (and insight's get_variance) for each case of a manifest,
# one JSON line each. usage: Rscript against_r_r2.R MANIFEST.json OUT.jsonl
# The manifest (bench/against_r_r2.py writes it) lists csv and formula; glmer fits it and
# performance 0.10.2 gives R2 (marginal, conditional), the ICC (adjusted, unadjusted) and the
# variance components, with glmer's logLik, fixef and VarCorr (its estimates, at which ours
# are computed again); or the error.
suppressMessages({library(lme4); library(performance); library(insight); library(jsonlite)})
a <- commandArgs(TRUE)
cases <- fromJSON(a[1], simplifyDataFrame = FALSE)
out <- file(a[2], "w")
number <- function(x) if (is.null(x) || length(x) == 0 || is.na(x[1])) NULL else unname(x[1])
for (case in cases) {
  d <- read.csv(case$csv)
  for (col in c("A", "B", "g", "h")) d[[col]] <- factor(d[[col]])
  rec <- list(name = case$name)
  fitted <- tryCatch(
    suppressWarnings(suppressMessages(glmer(as.formula(case$formula), data = d,
                                            family = binomial))),
    error = function(e) e)
  if (inherits(fitted, "error")) {
    rec$error <- conditionMessage(fitted)
  } else {
    rec$logLik <- as.numeric(logLik(fitted))
    rec$fixef <- unname(fixef(fitted))
    rec$fixef_names <- names(fixef(fitted))
    vc <- VarCorr(fitted)
    rec$vc_names <- names(vc)
    rec$vc <- lapply(vc, function(m) unname(as.matrix(m)[, , drop = FALSE]))
    rec$singular <- isSingular(fitted)
    # insight's rule (performance's check_singularity, tolerance 1e-5), which R2 and the ICC use
    rec$insight_singular <- check_singularity(fitted, tolerance = 1e-5)
    r2 <- tryCatch(suppressWarnings(suppressMessages(r2_nakagawa(fitted))),
                   error = function(e) e)
    if (inherits(r2, "error")) rec$r2_error <- conditionMessage(r2) else if (is.list(r2)) {
      rec$r2_marginal <- number(r2$R2_marginal)
      rec$r2_conditional <- number(r2$R2_conditional)
    }
    ic <- tryCatch(suppressWarnings(suppressMessages(icc(fitted))), error = function(e) e)
    if (inherits(ic, "error")) rec$icc_error <- conditionMessage(ic) else if (is.list(ic)) {
      rec$icc_adjusted <- number(ic$ICC_adjusted)
      rec$icc_unadjusted <- number(ic$ICC_unadjusted)
    }
    v <- tryCatch(suppressWarnings(suppressMessages(get_variance(fitted))),
                  error = function(e) e)
    if (!inherits(v, "error") && is.list(v)) {
      rec$var_fixed <- number(v$var.fixed)
      rec$var_random <- number(v$var.random)
      rec$var_intercept <- if (is.null(v$var.intercept)) NULL else sum(v$var.intercept)
    }
  }
  writeLines(toJSON(rec, auto_unbox = TRUE, digits = NA, null = "null", matrix = "rowmajor"),
             out)
  flush(out)
}
close(out)
