# emmeans references for the contrast families consec (mvt), eff and del.eff (fdr) and poly:
# the link-scale means with their covariance, and each family's contrasts with p-values and
# intervals (summary(infer = TRUE)); consec also by the levels of another factor (mvt's
# multiplier is each by group's own). mvtnorm's "mvt" is random (default abseps 1e-3); the
# seed is set for each call. The adjustments scheffe (p and multiplier from the rank of each
# by group's contrasts) and p.adjust's hochberg, hommel, BH and BY (Bonferroni intervals), on
# pairs and on contrasts whose rank is below their number (eff) or of one contrast (scheffe
# applies there too). Interaction contrasts (contrast(interaction = ...): one family per
# variable, their product; columns <variable>_<method>): urban x livch, livch x agegrp (4 x 3)
# and the same by urban, with the means and their covariance they were made from. regrid():
# the means on the response scale (also bias-adjusted with sigma = 0.8) and their contrasts,
# differences of probabilities. cld() (multcomp's generic, multcompView's letters): the
# sorted means with their ".group" letters, also reversed, with alpha = 0.1 and sidak (which
# also adjusts the means' intervals), and by agegrp. mvt over a larger family: livch x
# agegrp's 17 consecutive simple effects combined. Simple effects (contrast(simple = ...)):
# one variable, two together, "each" (a list of tables), a list of sets, and "each" with
# combine = TRUE (one family, Bonferroni by default; holm, scheffe on the rank of all, tukey
# becoming sidak, mvt on the joint covariance, odds ratios, and from means with a by
# variable, which "each" contrasts too). contrast()'s offset and scale (each contrast's
# coefficients times scale, its estimate plus offset): per contrast or one number, within by
# groups, on pairs' odds ratios, with mvt, and in a combined family of simple effects.
# usage: Rscript make_emmeans_contrasts.R DATA_DIR > emmeans_contrasts.json
suppressMessages({library(lme4); library(emmeans); library(jsonlite); library(multcomp)})
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
interaction_of <- function(ct) {
  s <- as.data.frame(summary(ct, infer = TRUE))
  labels <- setdiff(names(s), c("estimate", "odds.ratio", "SE", "df", "null", "z.ratio",
                                "p.value", "asymp.LCL", "asymp.UCL"))
  estimate <- if ("odds.ratio" %in% names(s)) s$odds.ratio else s$estimate
  list(columns = labels, labels = lapply(s[labels], as.character), estimate = estimate,
       SE = s$SE, z = s$z.ratio, p = s$p.value, lower = s$asymp.LCL, upper = s$asymp.UCL,
       adjust = attr(summary(ct), "adjust"))
}
contra$agegrp <- factor(ifelse(contra$age < -5, "young", ifelse(contra$age < 5, "mid", "old")),
                        levels = c("young", "mid", "old"))
m3 <- glmer(use ~ livch * agegrp + urban + (1 | district), data = contra, family = binomial)
e_ul <- emmeans(m2, ~ urban * livch)
e_la <- emmeans(m3, ~ livch * agegrp)
e_by <- emmeans(m3, ~ livch * agegrp | urban)
letters_of <- function(t) {
  t <- as.data.frame(t)
  keep <- setdiff(names(t), c("emmean", "SE", "df", "asymp.LCL", "asymp.UCL", ".group"))
  list(grid = lapply(t[keep], as.character), estimate = t$emmean, lower = t$asymp.LCL,
       upper = t$asymp.UCL, group = t$.group)
}
regridded <- function(r) {
  s <- as.data.frame(summary(r, infer = c(TRUE, FALSE)))
  list(prob = s$prob, SE = s$SE, lower = s$asymp.LCL, upper = s$asymp.UCL)
}
# an emm_list's parts by name (lapply would take the S4 objects apart)
parts_of <- function(l) {
  out <- list()
  for (name in names(l)) out[[name]] <- interaction_of(l[[name]])
  out
}
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
  contraception_by = list(means = means(e2), consec = table_of(contrast(e2, "consec")),
                          pairs_scheffe = table_of(pairs(e2, adjust = "scheffe"))),
  adjust = list(
    scheffe = table_of(pairs(e1, adjust = "scheffe")),
    eff_scheffe = table_of(contrast(e1, "eff", adjust = "scheffe")),
    hochberg = table_of(pairs(e1, adjust = "hochberg")),
    hommel = table_of(pairs(e1, adjust = "hommel")),
    BH = table_of(pairs(e1, adjust = "BH")),
    BY = table_of(pairs(e1, adjust = "BY")),
    one_scheffe = table_of(contrast(e1, list(first_last = c(1, 0, 0, -1)), adjust = "scheffe")),
    mvt_17 = {set.seed(1); interaction_of(contrast(e_la, "consec", simple = "each",
                                                   combine = TRUE, adjust = "mvt"))}),
  interaction = list(
    urban_livch = list(
      means = means(e_ul),
      pairwise = interaction_of(contrast(e_ul, interaction = "pairwise")),
      consec_trt = interaction_of(contrast(e_ul, interaction = c("consec", "trt.vs.ctrl"))),
      eff = interaction_of(contrast(e_ul, interaction = "eff")),
      tukey = interaction_of(contrast(e_ul, interaction = "pairwise", adjust = "tukey")),
      response = interaction_of(contrast(e_ul, interaction = "pairwise", type = "response"))),
    livch_agegrp = list(
      means = means(e_la),
      consec_pairwise = interaction_of(contrast(e_la, interaction = c("consec", "pairwise"))),
      poly_revpairwise = interaction_of(contrast(e_la, interaction = c("poly", "revpairwise")))),
    by_urban = list(
      means = means(e_by),
      consec_pairwise = interaction_of(contrast(e_by, interaction = c("consec", "pairwise"))))),
  regrid = list(
    cbpp = regridded(regrid(e1)),
    cbpp_pairs = table_of(pairs(regrid(e1))),
    cbpp_bias = regridded(regrid(e1, bias.adjust = TRUE, sigma = 0.8)),
    cbpp_bias_pairs = table_of(pairs(regrid(e1, bias.adjust = TRUE, sigma = 0.8))),
    contraception_by = regridded(regrid(e2)),
    contraception_by_consec = table_of(contrast(regrid(e2), "consec"))),
  cld = list(
    means = means(e_la),
    by_means = means(emmeans(m3, ~ livch | agegrp)),
    default = letters_of(cld(e_la)),
    reversed = letters_of(cld(e_la, reversed = TRUE)),
    sidak = letters_of(cld(e_la, alpha = 0.1, adjust = "sidak")),
    by_agegrp = letters_of(cld(emmeans(m3, ~ livch | agegrp))),
    cbpp = letters_of(cld(e1))),
  simple = list(
    urban = interaction_of(contrast(e_ul, "pairwise", simple = "urban")),
    livch_agegrp = interaction_of(contrast(e_la, "consec", simple = c("livch", "agegrp"))),
    each = parts_of(contrast(e_ul, "pairwise", simple = "each")),
    listed = parts_of(contrast(e_la, "pairwise", simple = list("agegrp", c("livch", "agegrp")))),
    combine = interaction_of(contrast(e_ul, "pairwise", simple = "each", combine = TRUE)),
    combine_holm = interaction_of(contrast(e_ul, "pairwise", simple = "each", combine = TRUE,
                                           adjust = "holm")),
    combine_scheffe = interaction_of(contrast(e_ul, "pairwise", simple = "each",
                                              combine = TRUE, adjust = "scheffe")),
    combine_tukey = suppressMessages(interaction_of(contrast(
      e_ul, "pairwise", simple = "each", combine = TRUE, adjust = "tukey"))),
    combine_mvt = {set.seed(1); interaction_of(contrast(e_ul, "consec", simple = "each",
                                                        combine = TRUE, adjust = "mvt"))},
    combine_response = interaction_of(contrast(e_ul, "pairwise", simple = "each",
                                               combine = TRUE, type = "response")),
    by_each = interaction_of(contrast(e_by, "consec", simple = "each", combine = TRUE))),
  offset_scale = list(
    trt_offset = table_of(contrast(e1, "trt.vs.ctrl", offset = c(0.5, -0.2, 0.1))),
    pairs_response = interaction_of(pairs(e1, scale = 0.5, offset = 0.3, type = "response")),
    eff_scale = table_of(contrast(e1, "eff", scale = c(1, 2, 3, 4))),
    consec_mvt = {set.seed(1); table_of(contrast(e1, "consec", scale = c(1, -1, 2),
                                                 adjust = "mvt"))},
    by_consec = table_of(contrast(e2, "consec", offset = c(0.1, 0.2, 0.3), scale = -2)),
    simple_combine = interaction_of(contrast(e_ul, "pairwise", simple = "each",
                                             combine = TRUE, scale = 0.5, offset = -0.1)))
)
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE))
