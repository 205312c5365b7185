# emmeans' joint_tests (1.8.4-1) of glmer fits (bobyqa, rhoend 1e-10) and glmmTMB fits (at the
# optimum, with the covariance of its exact Hessian), for tests/test_emmeans.py. F.ratio is
# rounded to 3 decimals by emmeans; p.value is not.
# usage: Rscript make_joint_tests.R  (in tests/reference; writes joint_tests.json, about 20 s)
suppressMessages({library(lme4); library(glmmTMB); library(emmeans); library(jsonlite)})
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
cbpp <- read.csv("../../src/glmm_binomial/data/cbpp.csv", stringsAsFactors = TRUE)
cbpp$period <- factor(cbpp$period)
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
cases <- list(
  list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
  list(data = "contraception", formula = "use ~ age * urban + livch + (1 | district)"),
  list(data = "contraception", formula = "use ~ urban * livch + age + (1 | district)"),
  list(data = "contraception", formula = "use ~ urban * livch + age + (1 | district)",
       by = "urban"),
  list(data = "contraception", formula = "use ~ age + I(age^2) + urban + livch + (1 | district)"),
  list(data = "contraception", formula = "use ~ poly(age, 2) * urban + (1 | district)"),
  list(data = "contraception", formula = "use ~ livch:urban + age + (1 + urban | district)"),
  list(data = "contraception", formula = "use ~ age + age:urban + livch + (1 | district)"),
  list(data = "contraception", formula = "use ~ livch + livch:urban + age + (1 | district)"),
  list(data = "contraception", formula = "use ~ age * livch * urban + (1 | district)"),
  list(data = "contraception", formula = "use ~ urban + livch:age + (1 | district)"),
  list(data = "contraception", formula = "use ~ urban + age:urban + (1 | district)")
)
tests <- function(fit, by) {
  table <- as.data.frame(if (is.null(by)) joint_tests(fit) else joint_tests(fit, by = by))
  list(by_levels = if (is.null(by)) NULL else as.character(table[[by]]),
       terms = table[["model term"]], df1 = table$df1, F = table$F.ratio, p = table$p.value,
       loglik = as.numeric(logLik(fit)))
}
out <- lapply(cases, function(case) {
  data <- if (case$data == "cbpp") cbpp else contraception
  f <- as.formula(case$formula)
  mer <- glmer(f, data = data, family = binomial, control = control)
  tmb <- glmmTMB(f, data = data, family = binomial)
  list(data = case$data, formula = case$formula, by = case$by,
       glmer = tests(mer, case$by), glmmTMB = tryCatch(tests(tmb, case$by), error = function(e) NULL))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE, auto_unbox = TRUE, null = "null"), "joint_tests.json")
