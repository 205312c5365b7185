# lme4 references for lme4's spellings of predict() and confint() arguments: predict's
# re.form (NULL, NA, a subset of the random terms of a model with two terms per grouping
# factor) and allow.new.levels, confint's parm ("beta_", names) with method "Wald".
# usage: Rscript make_re_form.R DATA_DIR > re_form.json
suppressMessages({library(lme4); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
contra <- read.csv(file.path(dir, "contraception.csv"), stringsAsFactors = TRUE)
contra$district <- factor(contra$district)
m <- glmer(use ~ age + urban + (1 + age || district), data = contra, family = binomial)
rows <- c(1, 2, 500, 1000, 1934)
new <- contra[rows, ]
link <- function(re) as.numeric(predict(m, newdata = new, re.form = re))
new_level <- tryCatch({
  predict(m, newdata = transform(new, district = factor(999)))
  "no error"
}, error = function(e) conditionMessage(e))
wald <- confint(m, parm = "beta_", method = "Wald")
out <- list(
  version = as.character(packageVersion("lme4")),
  formula = "use ~ age + urban + (1 + age || district)",
  logLik = as.numeric(logLik(m)),
  rows = rows - 1L,
  link_all = link(NULL),
  link_none = link(NA),
  link_intercept = link(~(1 | district)),
  link_age = link(~(0 + age | district)),
  new_level_error = new_level,
  wald_beta_names = rownames(wald),
  wald_beta_lower = as.numeric(wald[, 1]),
  wald_beta_upper = as.numeric(wald[, 2]),
  wald_age = as.numeric(confint(m, parm = "age", method = "Wald"))
)
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE))
