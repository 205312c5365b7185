# lme4 references for prediction on new data and R formula features (issue 9):
# fixed-effect names, logLik and predictions on a few new rows (re.form = NA and with the
# random effects) for formulas with poly/scale/bs/offset/%in%/factor and a rank-deficient X.
# usage: Rscript make_predict_newdata.R DATA_DIR > predict_newdata.json
suppressMessages({library(lme4); library(splines); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
contra <- read.csv(file.path(dir, "contraception.csv"), stringsAsFactors = TRUE)
contra$district <- factor(contra$district)
contra$age2 <- 2 * contra$age + 1
cbpp <- read.csv(file.path(dir, "cbpp.csv"), stringsAsFactors = TRUE)
cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
new_contra <- contra[c(1, 2, 500, 1000, 1934), ]
new_contra$age <- c(-10, 0, 5, 12.5, 30)
new_contra$age2 <- 2 * new_contra$age + 1
new_cbpp <- cbpp[c(1, 20, 56), ]
new_cbpp$size <- c(10, 40, 3)
one <- function(formula, data, newdata) {
  m <- glmer(as.formula(formula), data = data, family = binomial)
  list(formula = formula, fixef = as.list(fixef(m)), logLik = as.numeric(logLik(m)),
       rows = as.integer(rownames(newdata)) - 1L,
       link_population = as.numeric(predict(m, newdata = newdata, re.form = NA)),
       link_conditional = as.numeric(predict(m, newdata = newdata)))
}
out <- list(
  version = as.character(packageVersion("lme4")),
  new_contraception_age = new_contra$age,
  new_cbpp_size = new_cbpp$size,
  cases = list(
    one("use ~ poly(age, 2) + urban + (1 | district)", contra, new_contra),
    one("use ~ scale(age) + urban + (1 | district)", contra, new_contra),
    one("use ~ bs(age, df = 4) + (1 | district)", contra, new_contra),
    one("use ~ age %in% urban + (1 | district)", contra, new_contra),
    one("use ~ age + urban + age2 + (1 | district)", contra, new_contra),
    one("use ~ factor(livch) + age + (1 | district)", contra, new_contra),
    one("cbind(incidence, size - incidence) ~ period + offset(log(size)) + (1 | herd)", cbpp, new_cbpp)
  ))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null"), "\n")
