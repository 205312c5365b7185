# emmeans' reference grid and linear functions for each case of a manifest, one JSON line each.
# usage: Rscript against_r_emmeans.R MANIFEST.json OUT.jsonl
# The manifest (bench/against_r_emmeans.py writes it) lists csv, formula, at (for every call
# of the case; may be empty), weights (emmeans' weights= for every call; null: equal) and
# the calls: kind
# "emmeans" (specs, by) or "emtrends" (specs, var). The fit is glmer's (its estimates do not
# enter the linear functions); each call records emmeans' linfct with its column names (all
# of the formula's, an aliased one included), which rows are estimable, the grid (without
# .wgt.), which rows it shows (misc$display: empty nests are not), by.vars, the offsets and
# cld's sorted grid and symbols (or its error; none without multcomp), or the error. Each
# case also records emmeans' joint_tests of the fit (terms, df1, F.ratio, p.value) with
# glmer's fixef (NA where dropped) and vcov, or the error. With the manifest's simple: each
# emmeans call's contrast(e, "pairwise", simple = "each", combine = TRUE) (labels, estimates,
# SEs, p-values, whether the means are nested), or its error; with the manifest's
# scale_offset, contrast()'s scale and offset in that call.
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})
# cld is multcomp's generic (emmeans' method needs multcompView): recorded where installed.
has_cld <- requireNamespace("multcomp", quietly = TRUE) &&
  requireNamespace("multcompView", quietly = TRUE)
a <- commandArgs(TRUE)
cases <- fromJSON(a[1], simplifyDataFrame = FALSE)
out <- file(a[2], "w")
for (case in cases) {
  d <- read.csv(case$csv)
  for (col in c("A", "B", "C", "g")) if (col %in% names(d)) d[[col]] <- factor(d[[col]])
  fitted <- tryCatch(
    suppressWarnings(suppressMessages(glmer(
      as.formula(case$formula), data = d, family = binomial,
      control = glmerControl(calc.derivs = FALSE)))),
    error = function(e) e)
  calls <- list()
  for (call in case$calls) {
    rec <- list(label = call$label)
    if (inherits(fitted, "error")) {
      rec$error <- paste("fit:", conditionMessage(fitted))
    } else {
      specs <- unlist(call$specs)
      by <- if (length(call$by)) unlist(call$by) else NULL
      at <- lapply(case$at, unlist)
      args <- c(list(fitted, specs, by = by), if (length(at)) list(at = at),
                if (!is.null(case$weights)) list(weights = case$weights))
      e <- tryCatch(suppressMessages(
        if (call$kind == "emtrends") do.call(emtrends, c(args, list(var = call$var)))
        else do.call(emmeans, args)), error = function(e) e)
      if (inherits(e, "error")) {
        rec$error <- conditionMessage(e)
      } else {
        grid <- e@grid
        rec$columns <- colnames(e@linfct)
        rec$L <- unname(e@linfct)
        rec$estimable <- estimability::is.estble(e@linfct, e@nbasis)
        rec$offset <- if (".offset." %in% names(grid)) grid$.offset. else rep(0, nrow(grid))
        keep <- setdiff(names(grid), c(".wgt.", ".offset."))
        rec$grid <- lapply(grid[keep], as.character)
        rec$by <- e@misc$by.vars
        # the rows emmeans shows (a nested spec's empty nests are not)
        rec$shown <- if (is.null(e@misc$display)) rep(TRUE, nrow(grid)) else e@misc$display
        # cld's sorted means and their symbols (its Tukey comparisons at glmer's estimates)
        if (has_cld) rec$cld <- tryCatch({
          t <- as.data.frame(suppressMessages(multcomp::cld(e)))
          keep <- setdiff(names(t), c(names(t)[grepl("emmean|trend|SE|df|asymp", names(t))],
                                      ".group"))
          list(grid = lapply(t[keep], as.character), group = t$.group)
        }, error = function(err) list(error = conditionMessage(err)))
        # the simple effects of every variable as one family (Bonferroni), at glmer's estimates
        # (with the manifest's scale_offset: contrast()'s scale and offset too; emmeans
        # ignores scale where the means are nested, which it records)
        moved <- if (is.null(case$scale_offset)) list() else case$scale_offset
        if (isTRUE(case$simple) && call$kind == "emmeans") rec$simple <- tryCatch({
          s <- as.data.frame(summary(suppressMessages(do.call(
            contrast, c(list(e, "pairwise", simple = "each", combine = TRUE), moved)))))
          labels <- setdiff(names(s), c("estimate", "SE", "df", "null", "z.ratio", "p.value"))
          list(columns = labels, labels = lapply(s[labels], as.character), estimate = s$estimate,
               SE = s$SE, p = s$p.value, nested = !is.null(e@model.info$nesting))
        }, error = function(err) list(error = conditionMessage(err)))
      }
    }
    calls[[length(calls) + 1]] <- rec
  }
  joint <- if (inherits(fitted, "error")) list(error = "fit failed") else tryCatch({
    t <- as.data.frame(suppressMessages(joint_tests(fitted)))
    list(terms = as.character(t[["model term"]]), df1 = t$df1, F = t$F.ratio, p = t$p.value)
  }, error = function(e) list(error = conditionMessage(e)))
  # glmer's estimates, also where joint_tests stops (cld and simple effects are compared there)
  if (!inherits(fitted, "error")) {
    joint$fixef <- unname(fixef(fitted, add.dropped = TRUE))
    joint$vcov <- unname(as.matrix(vcov(fitted)))
  }
  writeLines(toJSON(list(name = case$name, calls = calls, joint = joint), auto_unbox = TRUE,
                    digits = NA, null = "null", na = "null", matrix = "rowmajor"), out)
  flush(out)
}
close(out)
