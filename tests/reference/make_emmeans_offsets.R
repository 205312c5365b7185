# emmeans references for offsets: cbpp's cbind(incidence, size - incidence) ~ period + (1 | herd)
# with log(size) as a formula offset() term, with log(size) as glmer's offset= argument, and
# the formula offset with emmeans' own offset = log(10) and offset = 0 (replacing the fit's);
# for each, the reference grid's .offset., emmeans' link-scale means and linfct, and glmer's
# fixef (ours differ from these means by L (beta_ours - beta_glmer) only).
# Offsets with two distinct values, which emmeans keeps at both (.offset., cov.keep = "2"),
# averages over and finds nested: "two", period + offset(log(t)) with t = 2 for every third
# herd (t %in% .offset.); "two_nested", period + offset(log(tp)) with tp = 2 in periods 3 and
# 4 (period %in% (.offset.*tp)); "two_argument", period + x with glmer's offset = log(t). For
# their means (with weights): the grid (as text, without .offset.), by.vars, linfct, which
# rows emmeans shows, the averaged offsets, estimates and SEs; for pairs the contrasts; and
# where emmeans 1.8.4 stops (emtrends, joint_tests), its error.
# usage: Rscript make_emmeans_offsets.R DATA_DIR > emmeans_offsets.json
script_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(script_dir, "emmeans_common.R"))
dir <- commandArgs(TRUE)[1]
cbpp <- read.csv(file.path(dir, "cbpp.csv"))
cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
term <- glmer(cbind(incidence, size - incidence) ~ period + offset(log(size)) + (1 | herd),
              data = cbpp, family = binomial)
argument <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), offset = log(size),
                  data = cbpp, family = binomial)
record <- function(m, e) {
  list(fixef = unname(fixef(m)), emmean = summary(e)$emmean, offset = e@grid$.offset.,
       L = unname(e@linfct))
}
herd <- as.integer(as.character(cbpp$herd))
cbpp$t <- ifelse(herd %% 3 == 0, 2, 1)
cbpp$tp <- ifelse(cbpp$period %in% c("3", "4"), 2, 1)
cbpp$x <- (herd %% 5) / 2
# glmer called here, not through fit(): emmeans evaluates the call's data to find t and tp.
two <- glmer(cbind(incidence, size - incidence) ~ period + offset(log(t)) + (1 | herd),
             data = cbpp, family = binomial)
two_nested <- glmer(cbind(incidence, size - incidence) ~ period + offset(log(tp)) + (1 | herd),
                    data = cbpp, family = binomial)
two_argument <- glmer(cbind(incidence, size - incidence) ~ period + x + (1 | herd),
                      offset = log(t), data = cbpp, family = binomial)
omeans <- function(e) {
  shown <- if (is.null(e@misc$display)) rep(TRUE, nrow(e@grid)) else e@misc$display
  c(means(e, c("grid", "by")), list(offset = e@grid$.offset., shown = shown))
}
stops <- function(expr) tryCatch({ q(expr); "no error" }, error = function(e) conditionMessage(e))
out <- list(
  version = as.character(packageVersion("emmeans")),
  mean_log_size = mean(log(cbpp$size)),
  term = record(term, emmeans(term, "period")),
  argument = record(argument, emmeans(argument, "period")),
  term_offset_log10 = record(term, emmeans(term, "period", offset = log(10))),
  term_offset_0 = record(term, emmeans(term, "period", offset = 0)),
  two = list(
    fixef = unname(fixef(two)),
    period = omeans(q(emmeans(two, "period"))),
    period_proportional = omeans(q(emmeans(two, "period", weights = "proportional"))),
    period_outer = omeans(q(emmeans(two, "period", weights = "outer"))),
    period_cells = omeans(q(emmeans(two, "period", weights = "cells"))),
    period_flat = omeans(q(emmeans(two, "period", weights = "flat"))),
    t = omeans(q(emmeans(two, "t"))),
    pairs_period = contrasts(q(pairs(emmeans(two, "period")))),
    joint_tests = stops(print(joint_tests(two)))),
  two_nested = list(
    fixef = unname(fixef(two_nested)),
    period = omeans(q(emmeans(two_nested, "period"))),
    period_cells = omeans(q(emmeans(two_nested, "period", weights = "cells"))),
    pairs_period = contrasts(q(pairs(emmeans(two_nested, "period"))))),
  two_argument = list(
    fixef = unname(fixef(two_argument)),
    period = omeans(q(emmeans(two_argument, "period"))),
    period_proportional = omeans(q(emmeans(two_argument, "period", weights = "proportional"))),
    period_cells = omeans(q(emmeans(two_argument, "period", weights = "cells"))),
    x = omeans(q(emmeans(two_argument, "x"))),
    pairs_period = contrasts(q(pairs(emmeans(two_argument, "period")))),
    emtrends = stops(print(emtrends(two_argument, "period", var = "x"))))
)
write_out(out)
