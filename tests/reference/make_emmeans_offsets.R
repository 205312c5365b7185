# emmeans references for offsets: cbpp's cbind(incidence, size - incidence) ~ period + (1 | herd)
# with log(size) as a formula offset() term, with log(size) as glmer's offset= argument, and
# the formula offset with emmeans' own offset = log(10) and offset = 0 (replacing the fit's);
# for each, the reference grid's .offset., emmeans' link-scale means and linfct, and glmer's
# fixef (ours differ from these means by L (beta_ours - beta_glmer) only).
# usage: Rscript make_emmeans_offsets.R DATA_DIR > emmeans_offsets.json
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})
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
out <- list(
  version = as.character(packageVersion("emmeans")),
  mean_log_size = mean(log(cbpp$size)),
  term = record(term, emmeans(term, "period")),
  argument = record(argument, emmeans(argument, "period")),
  term_offset_log10 = record(term, emmeans(term, "period", offset = log(10))),
  term_offset_0 = record(term, emmeans(term, "period", offset = 0))
)
cat(toJSON(out, auto_unbox = TRUE, digits = NA, matrix = "rowmajor"), "\n")
