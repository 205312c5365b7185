# Shared by make_emmeans_nonest.R, make_emmeans_weights.R, make_emmeans_nested.R,
# make_emmeans_offsets.R and make_joint_tests_nonest.R (each sources it from its own folder):
# the packages, contraception with its factors and without the cell urban "Y" / livch "3+",
# glmer fits, and what the scripts record of emmeans' results.
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})

contraception <- function(dir) {
  contra <- read.csv(file.path(dir, "contraception.csv"), stringsAsFactors = TRUE)
  contra$district <- factor(contra$district); contra$livch <- factor(contra$livch)
  contra
}
without_cell <- function(contra) {
  empty <- droplevels(contra[!(contra$urban == "Y" & contra$livch == "3+"), ])
  empty$livch <- factor(empty$livch, levels = levels(contra$livch))
  empty
}
age_groups <- function(age) factor(ifelse(age < -5, "young", ifelse(age < 5, "mid", "old")),
                                   levels = c("young", "mid", "old"))
fit <- function(formula, data) suppressWarnings(suppressMessages(
  glmer(formula, data = data, family = binomial)))
q <- function(expr) suppressMessages(expr)
# Means or trends: linfct over every column, which rows are estimable (all for a fit of full
# rank), the estimates and SEs of the rows emmeans shows, and any of `extra` (grid: the grid as
# text; by: by.vars; wgt: the cell counts .wgt.).
means <- function(e, extra = character(0)) {
  s <- as.data.frame(summary(e))
  estimate <- s[[setdiff(names(s), c(names(e@grid), "SE", "df", "asymp.LCL", "asymp.UCL"))[1]]]
  nb <- e@nbasis
  est <- if (all(is.na(nb))) rep(TRUE, nrow(e@linfct)) else estimability::is.estble(e@linfct, nb)
  out <- list(L = unname(e@linfct), estimable = est, estimate = estimate, SE = s$SE)
  if ("grid" %in% extra) {
    keep <- setdiff(names(e@grid), c(".wgt.", ".offset."))
    out <- c(list(grid = lapply(e@grid[keep], as.character)), out)
  }
  if ("by" %in% extra) out["by"] <- list(e@misc$by.vars)  # kept when NULL
  if ("wgt" %in% extra) out$wgt <- e@grid[[".wgt."]]
  out
}
# Contrasts: labels, estimates, SEs, adjusted p-values (and with by = TRUE the by columns).
contrasts <- function(p, by = FALSE) {
  s <- as.data.frame(summary(p))
  out <- list(contrast = as.character(s$contrast), estimate = s$estimate, SE = s$SE,
              p = s$p.value)
  if (by) out$by <- lapply(s[setdiff(names(s), c("contrast", "estimate", "SE", "df", "z.ratio",
                                                  "p.value"))], as.character)
  out
}
write_out <- function(out) {
  cat(toJSON(out, auto_unbox = TRUE, digits = NA, matrix = "rowmajor", na = "null"), "\n")
}
