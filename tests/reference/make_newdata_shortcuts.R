# marginaleffects 0.11.0 (installed from its source at tag 0.11.0, as for make_slopes.R): the
# newdata shortcuts "mean", "median", "tukey", "grid" and "marginalmeans" of avg_predictions,
# avg_slopes, avg_comparisons and predictions on glmer fits (bobyqa, rhoend 1e-10) and glmmTMB
# fits, for tests/test_datagrid.py. kids is an integer column (the number of living children,
# livch with "3+" as 3): marginaleffects puts integer columns at their rounded mean under every
# shortcut (FUN_integer), numbers at fivenum under "tukey" and "grid", factors, text and
# grouping factors at every value under "grid" and "marginalmeans". Standard errors as in
# make_slopes.R: Richardson Jacobians, the glmer fit's effects with glmmTMB's covariance.
# n_rows (calls without by): the rows of the grid marginaleffects predicts at (its "grid" also
# crosses the response's values, duplicating rows, which averages do not see).
# usage: Rscript make_newdata_shortcuts.R  (in tests/reference; writes newdata_shortcuts.json)
suppressMessages({library(lme4); library(glmmTMB); library(marginaleffects); library(jsonlite)})
stopifnot(packageVersion("marginaleffects") == "0.11.0")
options(marginaleffects_numDeriv = list(method = "Richardson"))
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
contraception$kids <- as.integer(substr(as.character(contraception$livch), 1, 1))
cbpp <- read.csv("../../src/glmm_binomial/data/cbpp.csv", stringsAsFactors = TRUE)
cbpp$period <- factor(cbpp$period)
cbpp$failures <- cbpp$size - cbpp$incidence
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
shortcuts <- c("mean", "median", "tukey", "grid", "marginalmeans")
calls_main <- c(
  lapply(shortcuts, function(s) list(fn = "avg_predictions", newdata = s)),
  lapply(shortcuts, function(s) list(fn = "avg_slopes", newdata = s)),
  lapply(shortcuts, function(s) list(fn = "avg_predictions", newdata = s, by = "urban")),
  list(list(fn = "predictions", newdata = "mean"), list(fn = "predictions", newdata = "median"),
       list(fn = "avg_slopes", newdata = "marginalmeans", by = "urban"),
       list(fn = "avg_predictions", newdata = "grid", re = "exclude"))
)
cases <- list(
  list(data = "contraception", formula = "use ~ age + kids + urban + (1 | district)",
       calls = calls_main),
  list(data = "cbpp", formula = "cbind(incidence, failures) ~ period + (1 | herd)",
       calls = list(list(fn = "avg_predictions", newdata = "marginalmeans", by = "period"),
                    list(fn = "avg_comparisons", newdata = "grid"),
                    list(fn = "avg_comparisons", newdata = "tukey")))
)
run <- function(fit, call, data, vcov = NULL) {
  args <- list(fit, newdata = call$newdata)
  if (!is.null(vcov)) args$vcov <- vcov
  if (!is.null(call$by)) args$by <- call$by
  if (identical(call$re, "exclude")) args$re.form <- NA
  table <- as.data.frame(do.call(call$fn, args))
  out <- list(term = table$term, contrast = table$contrast, estimate = table$estimate,
              std_error = table$std.error)
  if (length(call$by) == 1) out$by_values <- as.character(table[[call$by]])
  # the rows of the grid (without by columns): those predictions() predicts at
  if (is.null(call$by)) out$n_rows <- nrow(as.data.frame(predictions(fit, newdata = call$newdata)))
  out
}
out <- lapply(cases, function(case) {
  data <- if (case$data == "cbpp") cbpp else contraception
  f <- as.formula(case$formula)
  mer <- glmer(f, data = data, family = binomial, control = control)
  tmb <- glmmTMB(f, data = data, family = binomial)
  list(data = case$data, formula = case$formula,
       loglik = list(glmer = as.numeric(logLik(mer)), glmmTMB = as.numeric(logLik(tmb))),
       calls = lapply(case$calls, function(call) {
         c(call, list(glmmTMB = run(tmb, call, data),
                      glmer_tmb_vcov = run(mer, call, data, vcov(tmb)$cond)))
       }))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE, auto_unbox = TRUE, null = "null"),
           "newdata_shortcuts.json")
