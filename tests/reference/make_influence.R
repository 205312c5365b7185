# lme4's influence(model, groups) (deletion refits of each group or row), with dfbeta, dfbetas
# and cooks.distance, for tests/test_influence.py.
# usage: Rscript make_influence.R  (in tests/reference; writes influence.json, about 30 s)
suppressMessages({library(lme4); library(jsonlite)})
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
cbpp <- read.csv("../../src/glmm_binomial/data/cbpp.csv", stringsAsFactors = TRUE)
cbpp$period <- factor(cbpp$period)
cbpp$herd <- factor(cbpp$herd)
contraception$district <- factor(contraception$district)
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
cases <- list(
  list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       groups = "herd"),
  list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       groups = NULL),
  list(data = "contraception", formula = "use ~ age + urban + livch + (1 + urban | district)",
       groups = "district")
)
out <- lapply(cases, function(case) {
  data <- if (case$data == "cbpp") cbpp else contraception
  fit <- glmer(as.formula(case$formula), data = data, family = binomial, control = control)
  fit@call$data <- data
  infl <- if (is.null(case$groups)) influence(fit) else influence(fit, groups = case$groups)
  list(data = case$data, formula = case$formula, groups = if (is.null(case$groups)) "row" else case$groups,
       units = as.character(rownames(dfbeta(infl))), fixed = names(fixef(fit)),
       loglik = as.numeric(logLik(fit)), dfbeta = unname(dfbeta(infl)),
       dfbetas = unname(dfbetas(infl)), cooks = unname(cooks.distance(infl)),
       var_cov_names = colnames(infl[["var.cov.comps"]])[-1],
       var_cov = unname(infl[["var.cov.comps"]])[-1],
       var_cov_deleted = unname(infl[[4]][, -1, drop = FALSE]),
       converged = unname(infl[["converged"]]))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE, na = "null"), "influence.json")
