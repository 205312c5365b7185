# Conditional modes (with conditional SDs) and predictions of the cbpp Laplace fit, from a
# fresh glmer fit. (shared/reference/cbpp_inference.json took its ranef and predictions after
# confint(method = "profile"), which in lme4 1.1-31 leaves the fitted object at another theta:
# its modes are 1.18 times these.) usage: Rscript make_cbpp_ranef.R cbpp.csv > cbpp_ranef.json
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv(commandArgs(TRUE)[1]); d$herd <- factor(d$herd); d$period <- factor(d$period)
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = d, family = binomial)
re <- ranef(m, condVar = TRUE)$herd
sds <- sqrt(attr(re, "postVar")[1, 1, ])
out <- list(lme4 = as.character(packageVersion("lme4")),
  modes = data.frame(level = rownames(re), mode = re[[1]], sd = sds),
  link_conditional = unname(predict(m)[1:5]),
  link_population = unname(predict(m, re.form = NA)[1:5]),
  response_conditional = unname(predict(m, type = "response")[1:5]))
cat(toJSON(out, digits = NA, auto_unbox = TRUE), "\n")
