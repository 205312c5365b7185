# broom.mixed 0.2.9.4's tidy, glance and augment of glmer fits (bobyqa, rhoend 1e-10) and
# glmmTMB fits (at the optimum; broom.mixed has no ran_coefs, profile or augment of them), for
# tests/test_tidy.py.
# usage: Rscript make_broom.R  (in tests/reference; writes broom.json, about 60 s)
suppressMessages({library(lme4); library(glmmTMB); library(broom.mixed); library(jsonlite)})
stopifnot(packageVersion("broom.mixed") == "0.2.9.4")
contraception <- read.csv("../../src/glmm_binomial/data/contraception.csv", stringsAsFactors = TRUE)
contraception$livch <- factor(contraception$livch)
cbpp <- read.csv("../../src/glmm_binomial/data/cbpp.csv", stringsAsFactors = TRUE)
cbpp$period <- factor(cbpp$period)
cbpp$herd <- factor(cbpp$herd)
control <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
cases <- list(
  list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"),
  list(data = "contraception", formula = "use ~ age + urban + livch + (1 + urban | district)")
)
columns <- function(table) {
  table <- as.data.frame(table)
  lapply(table, function(column) if (is.numeric(column)) column else as.character(column))
}
out <- lapply(cases, function(case) {
  data <- if (case$data == "cbpp") cbpp else contraception
  f <- as.formula(case$formula)
  mer <- glmer(f, data = data, family = binomial, control = control)
  tmb <- glmmTMB(f, data = data, family = binomial)
  tidied <- function(fit) list(
    default = columns(tidy(fit)),
    wald = columns(tidy(fit, conf.int = TRUE, conf.level = 0.9)),
    exponentiated = columns(tidy(fit, effects = "fixed", conf.int = TRUE, exponentiate = TRUE)),
    vcov = columns(tidy(fit, effects = "ran_pars", scales = "vcov")),
    ran_vals = columns(tidy(fit, effects = "ran_vals")),
    glance = columns(glance(fit)))
  augmented <- suppressWarnings(as.data.frame(augment(mer)))
  list(data = case$data, formula = case$formula,
       loglik = list(glmer = as.numeric(logLik(mer)), glmmTMB = as.numeric(logLik(tmb))),
       glmer = c(tidied(mer), list(
         ran_coefs = columns(tidy(mer, effects = "ran_coefs")),
         profile = columns(tidy(mer, conf.int = TRUE, conf.method = "profile")),
         augment = columns(augmented[, c(".fitted", ".resid", ".fixed", ".mu", ".offset",
                                         ".weights")]))),
       glmmTMB = tidied(tmb))
})
writeLines(toJSON(out, digits = NA, pretty = TRUE, auto_unbox = TRUE, null = "null", na = "null"),
           "broom.json")
