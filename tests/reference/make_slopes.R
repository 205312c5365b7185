# marginaleffects 0.11.0 (installed from its source at tag 0.11.0: R CMD INSTALL; it is not a
# Debian package): slopes, comparisons and average predictions of glmer fits (bobyqa, rhoend
# 1e-10) and glmmTMB fits (at the optimum), for tests/test_slopes.py. The Jacobian of each estimate in the coefficients is taken by
# Richardson extrapolation (options(marginaleffects_numDeriv = list(method = "Richardson")))
# rather than marginaleffects' default forward difference, so that the standard errors are
# accurate to more digits than that difference gives (about 1e-4 relative).
# glmer_tmb_vcov: the glmer fit's effects with glmmTMB's covariance of the fixed effects (from
# its exact Hessian, at the optimum): with the random effects in the prediction, glmmTMB's own
# standard errors are not comparable (its predictions at a perturbed beta find the modes of the
# random effects afresh, where lme4's, marginaleffects' on glmer and ours hold them fixed).
# Also: numeric changes "sd", "2sd", "iqr"; hypothesis= (keywords, equations, weights, a null
# value); datagrid() rows as newdata (the grid is recorded with the call: grid).
# usage: Rscript make_slopes.R  (in tests/reference; writes slopes.json, about 10 minutes)
suppressMessages({library(lme4); library(glmmTMB); library(marginaleffects); library(jsonlite)})
stopifnot(packageVersion("marginaleffects") == "0.11.0")
options(marginaleffects_numDeriv = list(method = "Richardson"))
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
contraception$urban_yes <- contraception$urban == "Y"
contraception$w <- contraception$age + 20  # weights for wts=
cbpp <- read.csv("../../src/glmm_binomial/data/cbpp.csv", stringsAsFactors = TRUE)
cbpp$period <- factor(cbpp$period)
cbpp$failures <- cbpp$size - cbpp$incidence
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
# Each call: the function, then its arguments as the Python test passes them (variables as a
# list of name -> value, by, type, re "exclude" for re.form = NA).
calls_main <- list(
  list(fn = "avg_slopes"),
  list(fn = "avg_comparisons"),
  list(fn = "avg_slopes", by = "urban"),
  list(fn = "avg_slopes", re = "exclude"),
  list(fn = "avg_slopes", type = "link"),
  list(fn = "avg_comparisons", variables = list(age = 5)),
  list(fn = "avg_comparisons", variables = list(age = "minmax")),
  list(fn = "avg_comparisons", variables = list(age = c(-10, 10))),
  list(fn = "avg_comparisons", variables = list(livch = "pairwise")),
  list(fn = "avg_comparisons", variables = list(livch = "sequential"), by = "urban"),
  list(fn = "slopes", variables = "age"),
  list(fn = "avg_predictions"),
  list(fn = "avg_predictions", by = "urban"),
  list(fn = "avg_predictions", variables = "livch"),
  list(fn = "avg_predictions", variables = list(age = c(-10, 0, 10)), re = "exclude"),
  list(fn = "avg_predictions", variables = "age"),
  list(fn = "avg_predictions", variables = c("urban", "livch"), type = "link"),
  list(fn = "avg_predictions", variables = "urban", by = "livch"),
  list(fn = "avg_comparisons", variables = "urban", comparison = "ratio"),
  list(fn = "avg_comparisons", variables = "urban", comparison = "ratioavg"),
  list(fn = "avg_comparisons", variables = "livch", comparison = "lnor"),
  list(fn = "avg_comparisons", variables = "livch", comparison = "lnoravg", by = "urban"),
  list(fn = "avg_comparisons", variables = "urban", comparison = "lnratioavg"),
  list(fn = "avg_comparisons", variables = list(age = "minmax"), comparison = "ratio"),
  list(fn = "avg_slopes", variables = "age", slope = "eyex"),
  list(fn = "avg_slopes", variables = "age", slope = "dyex"),
  list(fn = "avg_slopes", variables = "age", slope = "eydx", by = "urban"),
  list(fn = "comparisons", variables = "urban", comparison = "lnratio"),
  list(fn = "avg_comparisons", variables = "urban", wts = "w"),
  # marginaleffects 0.11.0 leaves the weights out of ratioavg (its ratioavgwts calls wmean()
  # without them): an unweighted ratio of averages, which the test compares.
  list(fn = "avg_comparisons", variables = "livch", comparison = "ratioavg", wts = "w",
       by = "urban"),
  list(fn = "avg_predictions", by = "urban", wts = "w"),
  list(fn = "avg_slopes", variables = "age", wts = "w"),
  # numeric changes by the variable's spread over the fit's rows
  list(fn = "avg_comparisons", variables = list(age = "sd")),
  list(fn = "avg_comparisons", variables = list(age = "2sd"), comparison = "lnor"),
  list(fn = "avg_comparisons", variables = list(age = "iqr"), by = "urban"),
  list(fn = "comparisons", variables = list(age = "sd")),
  # hypothesis: keywords, equations of the estimates (rows b1, b2, ... or term names), weights,
  # and a single number (the null value of the tests)
  list(fn = "avg_comparisons", variables = "livch", hypothesis = "pairwise"),
  list(fn = "avg_comparisons", variables = "urban", by = "livch", hypothesis = "revpairwise"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "b1 = b2"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "b2 / b1 = 1"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "exp(b3) - b4^2 + log(b1) = 0.5"),
  list(fn = "avg_predictions", by = "livch", hypothesis = c(1, -1, 0.5, 0.5)),
  list(fn = "avg_predictions", by = c("livch", "urban"), hypothesis = "reference"),
  list(fn = "avg_predictions", variables = "livch", hypothesis = "sequential"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "revreference"),
  list(fn = "avg_predictions", by = "livch", hypothesis = "revsequential"),
  list(fn = "avg_slopes", hypothesis = 0.01),
  list(fn = "avg_slopes", variables = c("age", "urban"), hypothesis = "age = urban"),
  list(fn = "avg_comparisons", variables = "urban", comparison = "ratioavg", hypothesis = 1),
  # datagrid: the model's variables at their means or modes, some set to the values given
  list(fn = "slopes", variables = "age", datagrid = list(livch = c("0", "1"))),
  list(fn = "comparisons", variables = "livch", datagrid = list(urban = c("N", "Y")),
       hypothesis = "b3 - b6 = 0"),
  list(fn = "comparisons", datagrid = list()),
  # unit-level predictions: of the fit's rows, of a grid, averaged by a column
  list(fn = "predictions"),
  list(fn = "predictions", datagrid = list(age = c(-10, 0, 10), urban = "Y")),
  list(fn = "predictions", datagrid = list(age = c(-10, 0, 10), urban = "Y"),
       hypothesis = "b3 = b1"),
  list(fn = "predictions", datagrid = list(livch = c("0", "3+")), re = "exclude",
       hypothesis = "revpairwise"),
  list(fn = "predictions", by = "urban")
)
cases <- list(
  list(data = "contraception", formula = "use ~ age + I(age^2) + urban + livch + (1 | district)",
       calls = calls_main),
  list(data = "contraception", formula = "use ~ age * urban + livch + (1 + urban | district)",
       calls = list(list(fn = "avg_slopes"), list(fn = "avg_slopes", by = "livch"),
                    list(fn = "avg_comparisons", variables = "urban", by = "livch"),
                    list(fn = "avg_slopes", re = "exclude"),
                    list(fn = "slopes", variables = "urban"))),
  list(data = "contraception", formula = "use ~ poly(age, 2) * urban_yes + (1 | district)",
       calls = list(list(fn = "avg_slopes"), list(fn = "avg_comparisons", by = "urban_yes"))),
  list(data = "contraception", formula = "use ~ scale(age) + urban + (1 | district)",
       family = "probit", calls = list(list(fn = "avg_slopes"), list(fn = "avg_slopes", type = "link"))),
  list(data = "cbpp", formula = "cbind(incidence, failures) ~ period + (1 | herd)",
       calls = list(list(fn = "avg_comparisons"), list(fn = "avg_comparisons", re = "exclude"),
                    list(fn = "avg_comparisons", type = "link"),
                    list(fn = "slopes"), list(fn = "avg_predictions", by = "period"),
                    list(fn = "avg_comparisons", comparison = "ratioavg"),
                    list(fn = "avg_predictions", by = "period", hypothesis = "revsequential"),
                    list(fn = "comparisons", datagrid = list(period = c("1", "4")))))
)
run <- function(fit, call, data, vcov = NULL) {
  args <- list(fit)
  if (!is.null(vcov)) args$vcov <- vcov
  if (!is.null(call$variables)) args$variables <- call$variables
  if (!is.null(call$by)) args$by <- call$by
  if (!is.null(call$type)) args$type <- call$type
  if (!is.null(call$comparison)) args$comparison <- call$comparison
  if (!is.null(call$slope)) args$slope <- call$slope
  # marginaleffects takes a column of weights from newdata only: the column's values here
  if (!is.null(call$wts)) args$wts <- data[[call$wts]]
  if (identical(call$re, "exclude")) args$re.form <- NA
  if (!is.null(call$hypothesis)) args$hypothesis <- call$hypothesis
  grid <- NULL
  if (!is.null(call$datagrid)) {
    grid <- do.call(datagrid, c(list(model = fit), call$datagrid))
    args$newdata <- grid
  }
  table <- as.data.frame(do.call(call$fn, args))
  if (!is.null(table$rowid)) table <- table[table$rowid <= 6, ]
  out <- list(term = table$term, contrast = table$contrast, estimate = table$estimate,
              std_error = table$std.error, p_value = table$p.value,
              ci_lower = table$conf.low, ci_upper = table$conf.high)
  if (length(call$by) == 1) out$by_values <- as.character(table[[call$by]])
  # avg_predictions: the columns of the groups (by, else the variables), as text
  keys <- if (!is.null(call$by)) call$by else if (is.list(call$variables)) names(call$variables) else call$variables
  if (call$fn %in% c("avg_predictions", "predictions") && length(keys) && is.null(table$rowid))
    out$keys <- lapply(setNames(nm = keys), function(k) as.character(table[[k]]))
  if (!is.null(table$rowid)) out$rowid <- table$rowid
  if (!is.null(grid)) out$grid <- lapply(grid, function(v) if (is.factor(v)) as.character(v) else v)
  out
}
out <- lapply(cases, function(case) {
  data <- if (case$data == "cbpp") cbpp else contraception
  f <- as.formula(case$formula)
  family <- binomial(link = if (is.null(case$family)) "logit" else case$family)
  mer <- glmer(f, data = data, family = family, control = control)
  tmb <- glmmTMB(f, data = data, family = family)
  list(data = case$data, formula = case$formula, link = family$link,
       loglik = list(glmer = as.numeric(logLik(mer)), glmmTMB = as.numeric(logLik(tmb))),
       calls = lapply(case$calls, function(call) {
         c(call, list(glmer = run(mer, call, data), glmmTMB = run(tmb, call, data),
                      glmer_tmb_vcov = run(mer, call, data, vcov(tmb)$cond)))
       }))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE, auto_unbox = TRUE, null = "null"), "slopes.json")
