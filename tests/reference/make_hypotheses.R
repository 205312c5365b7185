# marginaleffects 0.11.0's hypotheses() on a fit's fixed effects and the equivalence,
# p_adjust, transform, cross and df arguments of its marginal-effect functions, for
# tests/test_hypothesis.py: a glmmTMB fit of contraception's model (at the optimum) and, for
# the standard errors where the random effects enter a prediction, the glmer fit with
# glmmTMB's covariance (see make_slopes.R). (0.11.0's hypotheses() has no transform.)
# usage: Rscript make_hypotheses.R  (in tests/reference; writes hypotheses.json, 1 minute)
suppressMessages({library(lme4); library(glmmTMB); library(marginaleffects); library(jsonlite)})
stopifnot(packageVersion("marginaleffects") == "0.11.0")
options(marginaleffects_numDeriv = list(method = "Richardson"))
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
contraception$livch <- factor(contraception$livch)
f <- use ~ age + I(age^2) + urban + livch + (1 | district)
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
mer <- glmer(f, data = contraception, family = binomial, control = control)
tmb <- glmmTMB(f, data = contraception, family = binomial)
# Each call: the function and its arguments as the Python test passes them.
calls <- list(
  list(fn = "hypotheses", hypothesis = "b2 = 0"),
  list(fn = "hypotheses", hypothesis = "urbanY = 2 * livch1"),
  list(fn = "hypotheses", hypothesis = "exp(b4) / exp(b5) = 1"),
  list(fn = "hypotheses", hypothesis = c(0, 0, 0, 1, -1, 0, 0)),
  list(fn = "hypotheses", hypothesis = "b6 - b5 = b7 - b6", equivalence = c(-0.5, 0.5)),
  list(fn = "hypotheses", equivalence = c(-0.1, 0.2)),
  list(fn = "avg_comparisons", variables = "livch", equivalence = c(-0.05, 0.2)),
  list(fn = "avg_predictions", by = "livch", hypothesis = "pairwise", p_adjust = "holm"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "pairwise", p_adjust = "hochberg"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "pairwise", p_adjust = "hommel"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "pairwise", p_adjust = "BH"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "pairwise", p_adjust = "BY"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "pairwise", p_adjust = "bonferroni"),
  list(fn = "avg_slopes", p_adjust = "fdr"),
  list(fn = "avg_slopes", variables = "age", equivalence = 0.001),
  # transform (the name of an R function here): estimates and limits transformed
  list(fn = "avg_comparisons", variables = "livch", comparison = "lnoravg", transform = "exp"),
  # cross: the variables changed together
  list(fn = "avg_comparisons", variables = c("urban", "livch"), cross = TRUE),
  list(fn = "avg_comparisons", variables = list(age = 5, urban = "reference"), cross = TRUE),
  list(fn = "comparisons", variables = c("urban", "age"), cross = TRUE,
       newdata = "first rows"),
  list(fn = "avg_comparisons", variables = list(livch = "pairwise", urban = "reference"),
       cross = TRUE, by = "urban"),
  # df: t tests and intervals
  list(fn = "avg_comparisons", variables = "livch", df = 12),
  list(fn = "hypotheses", hypothesis = "b4 = b5", df = 30, equivalence = c(-0.5, 0.5))
)
call_one <- function(fit, call, vcov = NULL) {
  args <- c(list(fit), call[setdiff(names(call), "fn")])
  if (!is.null(call$transform)) args$transform <- get(call$transform)
  if (identical(call$newdata, "first rows")) args$newdata <- head(contraception, 6)
  if (!is.null(vcov)) args$vcov <- vcov
  table <- as.data.frame(do.call(call$fn, args))
  keep <- c(term = "term", estimate = "estimate", std_error = "std.error",
            p_value = "p.value", statistic_noninf = "statistic.noninf",
            statistic_nonsup = "statistic.nonsup", p_value_noninf = "p.value.noninf",
            p_value_nonsup = "p.value.nonsup", p_value_equiv = "p.value.equiv",
            ci_lower = "conf.low", ci_upper = "conf.high")
  out <- lapply(keep, function(column) table[[column]])
  for (column in grep("^contrast", names(table), value = TRUE)) out[[column]] <- table[[column]]
  out[!vapply(out, is.null, logical(1))]
}
out <- list(
  formula = deparse(f), loglik = as.numeric(logLik(tmb)),
  calls = lapply(calls, function(call) {
    c(call, list(glmmTMB = call_one(tmb, call),
                 glmer_tmb_vcov = call_one(mer, call, vcov(tmb)$cond)))
  })
)
writeLines(toJSON(out, digits = NA, pretty = TRUE, auto_unbox = TRUE, null = "null"),
           "hypotheses.json")
