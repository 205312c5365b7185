# emmeans references for weights= (emmeans 1.8.4): "equal", "proportional", "outer", "cells",
# "flat" and a numeric vector, on contraception's use ~ age + urban * livch + agegrp +
# (1 | district) (agegrp: "young" age < -5, "mid" below 5, "old"), all rows and without the
# cell urban "Y" / livch "3+" (a rank-deficient fit), and on cbpp with a two-valued numeric z
# (herd number mod 2: cov.keep) and a numeric x given three values in at=. For each call:
# the grid's cell counts (.wgt.), linfct (over every column), which rows are estimable,
# estimates and SEs (NA where nonEst or without weight).
# usage: Rscript make_emmeans_weights.R DATA_DIR > emmeans_weights.json
script_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)))
source(file.path(script_dir, "emmeans_common.R"))
dir <- commandArgs(TRUE)[1]
contra <- contraception(dir)
contra$agegrp <- age_groups(contra$age)
empty <- without_cell(contra)
cbpp <- read.csv(file.path(dir, "cbpp.csv"))
cbpp$period <- factor(cbpp$period); cbpp$herd <- factor(cbpp$herd)
cbpp$z <- as.integer(cbpp$herd) %% 2
cbpp$x <- cos(seq_len(nrow(cbpp)))
record <- function(m, calls) {
  c(list(fixef = unname(fixef(m, add.dropped = TRUE)),
         columns = names(fixef(m, add.dropped = TRUE))), calls)
}
wmeans <- function(e) means(e, "wgt")
form <- use ~ age + urban * livch + agegrp + (1 | district)
m1 <- fit(form, contra)
calls1 <- list(grid_wgt = ref_grid(m1)@grid[[".wgt."]])
for (w in c("equal", "proportional", "outer", "cells", "flat"))
  calls1[[paste0("urban_", w)]] <- wmeans(q(emmeans(m1, "urban", weights = w)))
calls1$urban_prop <- wmeans(q(emmeans(m1, "urban", weights = "prop")))
calls1$urban_numeric <- wmeans(q(emmeans(m1, "urban", weights = 1:12)))
calls1$livch_by_urban_cells <- wmeans(q(emmeans(m1, "livch", by = "urban", weights = "cells")))
calls1$urban_agegrp_outer <- wmeans(q(emmeans(m1, c("urban", "agegrp"), weights = "outer")))
calls1$agegrp_outer <- wmeans(q(emmeans(m1, "agegrp", weights = "outer")))
calls1$age_trend_prop <- wmeans(q(emtrends(m1, "urban", var = "age", weights = "prop")))
calls1$pairs_urban_cells <- contrasts(pairs(q(emmeans(m1, "urban", weights = "cells"))))
m2 <- fit(form, empty)
calls2 <- list(grid_wgt = ref_grid(m2)@grid[[".wgt."]])
for (w in c("equal", "proportional", "outer", "cells", "flat"))
  calls2[[paste0("urban_", w)]] <- wmeans(q(emmeans(m2, "urban", weights = w)))
calls2$urban_livch_cells <- wmeans(q(emmeans(m2, c("urban", "livch"), weights = "cells")))
calls2$pairs_urban_livch_cells <- contrasts(pairs(q(emmeans(m2, c("urban", "livch"),
                                                             weights = "cells"))))
m3 <- fit(cbind(incidence, size - incidence) ~ period + z + x + (1 | herd), cbpp)
calls3 <- list(grid_wgt = ref_grid(m3)@grid[[".wgt."]],
               grid_wgt_at = ref_grid(m3, at = list(x = c(-1, 0, 1)))@grid[[".wgt."]])
calls3$period_prop <- wmeans(q(emmeans(m3, "period", weights = "prop")))
calls3$z_cells <- wmeans(q(emmeans(m3, "z", weights = "cells")))
calls3$period_prop_at <- wmeans(q(emmeans(m3, "period", weights = "prop",
                                         at = list(x = c(-1, 0, 1)))))
calls3$period_cells_at <- wmeans(q(emmeans(m3, "period", weights = "cells",
                                          at = list(x = c(-1, 0, 1), z = 1))))
out <- list(
  version = as.character(packageVersion("emmeans")),
  contraception = record(m1, calls1),
  empty_cell = record(m2, calls2),
  cbpp = record(m3, calls3)
)
write_out(out)
