# emmeans references for nesting (emmeans 1.8.4): a factor nested in another by the model's
# terms (contraception's use ~ livch + livch:urban + age + (1 | district): urban %in% livch,
# on all rows and without the cell urban "Y" / livch "3+"), and by the data (kids = "no" for
# livch "0", else "yes": use ~ kids + livch + urban + age + (1 | district), where glmer drops
# an aliased column and emmeans finds livch %in% kids in the grid's cell counts), and two
# nested by the data (kids and livch; adult = "no" for agegrp "young", else "yes", and agegrp:
# use ~ kids + livch + adult + agegrp + urban + (1 | district), averaged over both). For each
# call (some with weights, which emmeans applies in both stages of a nested average): the
# grid (as text), linfct over every column (NA rows: none here), which rows are estimable,
# estimates and SEs; for pairs the contrasts' labels, estimates, SEs and p-values
# (by groups of different sizes: a group with one mean gives emmeans' "(nothing)", NA);
# for each fit its vcov and joint_tests (terms, df1, F.ratio rounded to 3 decimals, p.value).
# usage: Rscript make_emmeans_nested.R DATA_DIR > emmeans_nested.json
script_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(script_dir, "emmeans_common.R"))
dir <- commandArgs(TRUE)[1]
contra <- contraception(dir)
contra$kids <- factor(ifelse(contra$livch == "0", "no", "yes"))
empty <- without_cell(contra)
nmeans <- function(e) means(e, c("grid", "by"))
ncontrasts <- function(p) contrasts(p, by = TRUE)
joint <- function(m) tryCatch({
  t <- as.data.frame(suppressMessages(joint_tests(m)))
  list(terms = as.character(t[["model term"]]), df1 = t$df1, F = t$F.ratio, p = t$p.value)
}, error = function(e) list(error = conditionMessage(e)))
record <- function(m, calls) {
  c(list(fixef = unname(fixef(m, add.dropped = TRUE)),
         columns = names(fixef(m, add.dropped = TRUE)), vcov = unname(as.matrix(vcov(m))),
         joint_tests = joint(m)), calls)
}
terms_formula <- use ~ livch + livch:urban + age + (1 | district)
m1 <- fit(terms_formula, contra)
m2 <- fit(terms_formula, empty)
m3 <- fit(use ~ kids + livch + urban + age + (1 | district), contra)
contra$agegrp <- age_groups(contra$age)
contra$adult <- factor(ifelse(contra$agegrp == "young", "no", "yes"))
m4 <- fit(use ~ kids + livch + adult + agegrp + urban + (1 | district), contra)
out <- list(
  version = as.character(packageVersion("emmeans")),
  terms = record(m1, list(
    urban = nmeans(q(emmeans(m1, "urban"))),
    livch = nmeans(q(emmeans(m1, "livch"))),
    urban_by_livch = nmeans(q(emmeans(m1, "urban", by = "livch"))),
    livch_by_urban = nmeans(q(emmeans(m1, "livch", by = "urban"))),
    pairs_urban = ncontrasts(q(pairs(emmeans(m1, "urban")))),
    pairs_urban_by_livch = ncontrasts(q(pairs(emmeans(m1, "urban", by = "livch")))),
    age_trend_urban = nmeans(q(emtrends(m1, "urban", var = "age"))))),
  terms_empty = record(m2, list(
    urban = nmeans(q(emmeans(m2, "urban"))),
    livch = nmeans(q(emmeans(m2, "livch"))),
    livch_flat = nmeans(q(emmeans(m2, "livch", weights = "flat"))),
    pairs_urban = ncontrasts(q(pairs(emmeans(m2, "urban")))),
    pairs_urban_by_livch = ncontrasts(q(pairs(emmeans(m2, "urban", by = "livch")))),
    trt_urban_by_livch = ncontrasts(q(contrast(emmeans(m2, "urban", by = "livch"),
                                              "trt.vs.ctrl"))))),
  data = record(m3, list(
    livch = nmeans(q(emmeans(m3, "livch"))),
    kids = nmeans(q(emmeans(m3, "kids"))),
    urban = nmeans(q(emmeans(m3, "urban"))),
    kids_urban = nmeans(q(emmeans(m3, c("kids", "urban")))),
    kids_prop = nmeans(q(emmeans(m3, "kids", weights = "proportional"))),
    urban_cells = nmeans(q(emmeans(m3, "urban", weights = "cells"))),
    urban_outer = nmeans(q(emmeans(m3, "urban", weights = "outer"))),
    pairs_livch = ncontrasts(q(pairs(emmeans(m3, "livch")))),
    pairs_livch_by_kids = ncontrasts(q(pairs(emmeans(m3, "livch", by = "kids")))))),
  # (emmeans 1.8.4 itself stops with "undefined columns selected" on the means of urban or
  # adult here; those of kids average over livch within kids and agegrp within adult.)
  two = record(m4, list(
    kids = nmeans(q(emmeans(m4, "kids"))),
    kids_urban = nmeans(q(emmeans(m4, c("kids", "urban")))),
    kids_prop = nmeans(q(emmeans(m4, "kids", weights = "proportional"))),
    kids_cells = nmeans(q(emmeans(m4, "kids", weights = "cells"))),
    kids_urban_outer = nmeans(q(emmeans(m4, c("kids", "urban"), weights = "outer")))))
)
write_out(out)
