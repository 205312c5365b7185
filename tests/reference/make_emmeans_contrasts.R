# emmeans references for the contrast families consec (mvt), eff and del.eff (fdr) and poly:
# the link-scale means with their covariance, and each family's contrasts with p-values and
# intervals (summary(infer = TRUE)); consec also by the levels of another factor (mvt's
# multiplier is each by group's own). mvtnorm's "mvt" is random (default abseps 1e-3); the
# seed is set for each call.
# usage: Rscript make_emmeans_contrasts.R DATA_DIR > emmeans_contrasts.json
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
cbpp <- read.csv(file.path(dir, "cbpp.csv"))
cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
contra <- read.csv(file.path(dir, "contraception.csv"), stringsAsFactors = TRUE)
contra$district <- factor(contra$district); contra$livch <- factor(contra$livch)
table_of <- function(ct) {
  set.seed(1)
  s <- as.data.frame(summary(ct, infer = TRUE))
  list(contrast = as.character(s$contrast), estimate = s$estimate, SE = s$SE,
       z = s$z.ratio, p = s$p.value, lower = s$asymp.LCL, upper = s$asymp.UCL,
       by = if ("urban" %in% names(s)) as.character(s$urban) else NULL,
       adjust = attr(summary(ct), "adjust"))
}
m1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp,
            family = binomial)
e1 <- emmeans(m1, "period")
m2 <- glmer(use ~ age + urban * livch + (1 | district), data = contra, family = binomial)
e2 <- emmeans(m2, "livch", by = "urban")
means <- function(e) {
  s <- as.data.frame(e)
  list(emmean = s$emmean, vcov = unname(vcov(e)), grid = lapply(s[, setdiff(names(s),
       c("emmean", "SE", "df", "asymp.LCL", "asymp.UCL")), drop = FALSE], as.character))
}
out <- list(
  version = as.character(packageVersion("emmeans")),
  cbpp = list(means = means(e1),
              consec = table_of(contrast(e1, "consec")),
              eff = table_of(contrast(e1, "eff")),
              del_eff = table_of(contrast(e1, "del.eff")),
              poly = table_of(contrast(e1, "poly")),
              trt_mvt = table_of(contrast(e1, "trt.vs.ctrl", adjust = "mvt"))),
  contraception_by = list(means = means(e2), consec = table_of(contrast(e2, "consec")))
)
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE))
