# emmeans' joint_tests (1.8.4-1) of rank-deficient glmer fits, for tests/test_emmeans.py:
# contraception's use ~ age + urban * livch + (1 | district) without the rows of urban "Y"
# with livch "3+" (glmer drops urbanY:livch3+; without by and by urban) and use ~ age +
# urban:livch + (1 | district) on all rows (an aliased cell-means column). For each: glmer's
# fixef (NA for the dropped column), its vcov (the kept columns) and the table: terms, by
# levels, df1, F.ratio (rounded to 3 decimals by emmeans), p.value and the note ("e": df1
# reduced due to non-estimability).
# usage: Rscript make_joint_tests_nonest.R DATA_DIR > joint_tests_nonest.json
script_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(script_dir, "emmeans_common.R"))
dir <- commandArgs(TRUE)[1]
contra <- contraception(dir)
empty <- without_cell(contra)
table <- function(m, by = NULL) {
  t <- as.data.frame(suppressMessages(joint_tests(m, by = by)))
  list(by_levels = if (is.null(by)) NULL else as.character(t[[by]]),
       terms = as.character(t[["model term"]]), df1 = t$df1, F = t$F.ratio, p = t$p.value,
       note = if (is.null(t$note)) rep("", nrow(t)) else trimws(t$note))
}
record <- function(m, tables) {
  c(list(fixef = unname(fixef(m, add.dropped = TRUE)), vcov = unname(as.matrix(vcov(m)))),
    tables)
}
m1 <- fit(use ~ age + urban * livch + (1 | district), empty)
m2 <- fit(use ~ age + urban:livch + (1 | district), contra)
out <- list(
  version = as.character(packageVersion("emmeans")),
  empty_cell = record(m1, list(none = table(m1), by_urban = table(m1, "urban"))),
  cell_means = record(m2, list(none = table(m2)))
)
write_out(out)
