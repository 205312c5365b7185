# emmeans references for rank-deficient fits: contraception's use ~ age + urban * livch +
# (1 | district) without the rows of urban "Y" with livch "3+" (the cell left empty: glmer
# drops the aliased column urbanY:livch3+), and use ~ age + urban:livch + (1 | district) on all
# rows (an aliased cell-means column, every mean estimable). For each: glmer's fixef (NA for
# the dropped column) and column names, and for emmeans' means, pairs and a trend: linfct,
# which rows are estimable (estimability::is.estble), estimates and SEs (NA where nonEst), and
# the pairs' Tukey p-values; also their holm, hommel, BY and sidak p-values (emmeans counts
# the non-estimable pairs in each family).
# usage: Rscript make_emmeans_nonest.R DATA_DIR > emmeans_nonest.json
script_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(script_dir, "emmeans_common.R"))
dir <- commandArgs(TRUE)[1]
contra <- contraception(dir)
empty <- without_cell(contra)
record <- function(m, calls) {
  c(list(fixef = unname(fixef(m, add.dropped = TRUE)),
         columns = names(fixef(m, add.dropped = TRUE))), calls)
}
m1 <- fit(use ~ age + urban * livch + (1 | district), empty)
e_by <- emmeans(m1, "livch", by = "urban")
e_livch <- emmeans(m1, "livch")
m2 <- fit(use ~ age + urban:livch + (1 | district), contra)
out <- list(
  version = as.character(packageVersion("emmeans")),
  empty_cell = record(m1, list(
    livch_by_urban = means(e_by), pairs_by_urban = contrasts(pairs(e_by)),
    livch = means(e_livch), pairs_livch = contrasts(pairs(e_livch)),
    pairs_by_urban_holm = contrasts(pairs(e_by, adjust = "holm")),
    pairs_by_urban_hommel = contrasts(pairs(e_by, adjust = "hommel")),
    pairs_by_urban_BY = contrasts(pairs(e_by, adjust = "BY")),
    pairs_by_urban_sidak = contrasts(pairs(e_by, adjust = "sidak")),
    age_trend_by_urban = means(emtrends(m1, "urban", var = "age")))),
  cell_means = record(m2, list(livch = means(emmeans(m2, "livch"))))
)
write_out(out)
