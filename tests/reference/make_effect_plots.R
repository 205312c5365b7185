# marginaleffects 0.11.0's plot_predictions, plot_slopes and plot_comparisons with draw = FALSE
# (the tables they plot) for tests/test_effect_plots.py: a glmmTMB fit (at the optimum: the
# estimates) and the glmer fit with glmmTMB's covariance of the fixed effects (the standard
# errors: the grid's rows include the modal district's random effect, which glmmTMB's own
# perturbed predictions find afresh; see make_slopes.R).
# usage: Rscript make_effect_plots.R  (in tests/reference; writes effect_plots.json, 1 minute)
suppressMessages({library(lme4); library(glmmTMB); library(marginaleffects); library(jsonlite)})
stopifnot(packageVersion("marginaleffects") == "0.11.0")
options(marginaleffects_numDeriv = list(method = "Richardson"))
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
contraception$district <- factor(contraception$district)
f <- use ~ age + I(age^2) + urban + livch + (1 | district)
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
mer <- glmer(f, data = contraception, family = binomial, control = control)
tmb <- glmmTMB(f, data = contraception, family = binomial)
calls <- list(
  list(fn = "plot_predictions", condition = c("age", "livch")),
  list(fn = "plot_predictions", condition = list(livch = NULL, age = "threenum")),
  list(fn = "plot_predictions", condition = list(urban = NULL, age = "minmax", livch = NULL)),
  list(fn = "plot_predictions", by = c("livch", "urban")),
  list(fn = "plot_slopes", variables = "age", condition = c("age", "urban")),
  list(fn = "plot_comparisons", variables = "livch", condition = list(urban = NULL, age = "quartile")),
  list(fn = "plot_comparisons", variables = "urban", by = "livch")
)
run <- function(fit, call, vcov = NULL) {
  args <- list(fit, draw = FALSE)
  if (!is.null(vcov)) args$vcov <- vcov
  for (k in c("variables", "condition", "by")) if (!is.null(call[[k]])) args[[k]] <- call[[k]]
  table <- as.data.frame(do.call(call$fn, args))
  keys <- if (!is.null(call$by)) call$by else names(call$condition) %||% call$condition
  out <- list(estimate = table$estimate, std_error = table$std.error)
  if (!is.null(table$contrast)) out$contrast <- table$contrast
  out$keys <- lapply(setNames(nm = keys), function(k) {
    v <- table[[k]]; if (is.numeric(v)) v else as.character(v)
  })
  out
}
`%||%` <- function(a, b) if (is.null(a)) b else a
out <- list(
  formula = deparse(f), loglik = as.numeric(logLik(tmb)),
  calls = lapply(calls, function(call) {
    c(call, list(glmmTMB = run(tmb, call), glmer_tmb_vcov = run(mer, call, vcov(tmb)$cond)))
  })
)
writeLines(toJSON(out, digits = NA, pretty = TRUE, auto_unbox = TRUE, null = "null"),
           "effect_plots.json")
