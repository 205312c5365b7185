# Fit each formula of a manifest with lme4::glmer and glmmTMB; one JSON line per case and engine.
# usage: Rscript fuzz_formula.R MANIFEST.json OUT.jsonl
# The manifest (bench/fuzz_formula.py writes it) lists csv, formula and link (binomial's).
# glmer's record has the fixed-effect columns it kept (getME(m, "X"), after dropping aliased
# ones), the random-effect columns of each term (cnms) and logLik; glmmTMB's its logLik.
# Errors and warnings are recorded. Where car is installed, both records also hold car's
# Anova (Type II and III Wald chi-square tests per term: labels, Df, Chisq).
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite); library(splines)})
has_car <- requireNamespace("car", quietly = TRUE)
anova_record <- function(m, type) {
  tryCatch(suppressWarnings({
    a <- car::Anova(m, type = type)
    list(terms = as.list(rownames(a)), df = as.list(a$Df), chisq = as.list(a$Chisq))
  }), error = function(e) list(error = conditionMessage(e)))
}
a <- commandArgs(TRUE)
cases <- fromJSON(a[1], simplifyDataFrame = FALSE)
out <- file(a[2], "a")
run <- function(expr) {
  warns <- character(0)
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) e),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) invokeRestart("muffleMessage"))
  list(value = value, warnings = warns)
}
for (case in cases) {
  d <- read.csv(case$csv, stringsAsFactors = TRUE)
  fo <- tryCatch(as.formula(case$formula), error = function(e) e)
  if (inherits(fo, "error")) {
    for (engine in c("glmer", "glmmTMB")) {
      writeLines(toJSON(list(name = case$name, engine = engine, error = conditionMessage(fo)),
                        auto_unbox = TRUE), out)
    }
    next
  }
  link <- if (is.null(case$link)) "logit" else case$link
  fam <- binomial(link = link)
  for (engine in c("glmer", "glmmTMB")) {
    r <- if (engine == "glmer") {
      run(glmer(fo, data = d, family = fam))
    } else {
      run(glmmTMB(fo, data = d, family = fam))
    }
    rec <- list(name = case$name, engine = engine, formula = case$formula, link = link,
                warnings = r$warnings)
    if (inherits(r$value, "error")) {
      rec$error <- conditionMessage(r$value)
    } else {
      m <- r$value
      rec$logLik <- as.numeric(logLik(m))
      if (has_car) {
        rec$anova2 <- anova_record(m, 2)
        rec$anova3 <- anova_record(m, 3)
      }
      if (engine == "glmer") {
        rec$fixed <- colnames(getME(m, "X"))
        cn <- getME(m, "cnms")
        rec$random <- lapply(seq_along(cn), function(i) list(group = names(cn)[i], terms = cn[[i]]))
        rec$singular <- isSingular(m)
      }
    }
    writeLines(toJSON(rec, auto_unbox = TRUE, digits = NA, null = "null"), out)
    flush(out)
  }
}
close(out)
