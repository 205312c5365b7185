"""Fit a binomial GLMM to a Dask DataFrame: the in-memory objective mapped over partitions.

The Laplace (and AGQ) deviance, its exact gradient and the fixed-effects information
are sums over the levels of the outermost grouping factor when every other grouping factor is
nested in it: the matrix H of the mode search is block diagonal over those levels. So the rows
are shuffled once so that each partition holds whole levels of that factor; each partition
becomes a ModelData with the method's own objective (``method.likelihood_objective(rows)``),
which stays in the memory of a Dask worker (nested.py); every evaluation asks the partitions
for their share and sums the answers in partition order on the client (adding the priors'
deviance once, for a posterior-mode fit), where
``optimize.minimize_deviance`` runs unchanged. The numerics are those of methods/; this
package only moves arrays and adds. Grouping factors crossed with the partitioning one
(Laplace) are handled by crossed.py (their random effects solved for on the client through a
dense Schur complement); mean-field variational Bayes by vb.py (the ELBO's sums over rows),
structured variational Bayes by structured_vb.py (the inner loop's sums over partitions).

Steps of ``fit_dask``:

1. One pass over the complete rows (learning.py) learns the design as a DesignInfo: the
   formulaic model specs, the levels of every grouping factor and factor column, the
   response's levels, which object columns are numbers, and, where nesting is not visible in
   the formula, whether each grouping factor is nested in the partitioning one.
2. The rows are shuffled on the partitioning factor (hash partitioning: deterministic) and each
   partition is built on its worker from the DesignInfo, the FitOptions and the crossed-term
   plan (partition.PartitionPlan), rows in their original order, by the functions that build
   new data for prediction (model.newdata.rows_design).
3. Aliased fixed-effect columns, the internal scaling and the GLM start from partition sums
   (start.py); then minimize_deviance (or the variational optimizer), the conditional modes
   placed in the global level order, the separation check and the check in user units.

The client asks the partitions through one protocol (runner.py), and the same input gives the
same estimates bit for bit: sums in partition order, and partitions whose state moves are
versioned (nested) or pinned working copies (crossed), so that where Dask runs a task cannot
change a number. Lost workers are survived: a lost nested partition is rebuilt from the task
graph (the source files) by replaying its versions, to the same bits; a crossed evaluation is
restarted. A process restarted after a failure can round the deviance's dot products
differently in the last digits (memory alignment), which moved a 10M-row logLik by 4e-15
relative. Between evaluations a partition keeps only its rows, stored compactly (about 40
bytes per row for y ~ x + (1 + x | g)), and the last conditional modes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glmm_binomial.arguments import positive_int
from glmm_binomial.distributed.crossed import (
    CrossedObjective,
    CrossedPartition,
    PinnedRunner,
    crossed_size,
    crossed_terms,
    forget_partitions,
)
from glmm_binomial.distributed.learning import Learned, learn, nesting_plan, not_decomposable
from glmm_binomial.distributed.nested import ModePartition, NestedObjective
from glmm_binomial.distributed.partition import (
    ROW_COLUMN,
    Partition,
    PartitionFacts,
    PartitionPlan,
    build_partition,
    column_names,
)
from glmm_binomial.distributed.result import DaskGLMMResult, rowless_model
from glmm_binomial.distributed.result import is_dask_frame as is_dask_frame
from glmm_binomial.distributed.runner import Partitions, return_free_memory
from glmm_binomial.distributed.start import (
    Start,
    first_passes,
    glm_start,
    glm_sums,
    identifiability_stand_in,
    result_design,
    runaway_rows,
    separation_check,
    theta_start,
)
from glmm_binomial.distributed.structured_vb import (
    StructuredPartition,
    fit_partitioned_structured_vb,
)
from glmm_binomial.distributed.vb import VariationalPartition, fit_partitioned_vb
from glmm_binomial.family import BINOMIAL_LOGIT, Family
from glmm_binomial.methods.agq import (
    Agq,
    loglik_label,
    quadrature_tolerances,
    with_quadrature_bound,
)
from glmm_binomial.methods.base import Method
from glmm_binomial.methods.estimates import FitOutput, final_checks, require_finite
from glmm_binomial.methods.laplace import (
    LOGLIK_LABEL,
    Laplace,
    fit_output,
    run_off_error,
    verified_off_path,
    with_link_bound,
)
from glmm_binomial.methods.maximum_likelihood import LikelihoodMethod
from glmm_binomial.methods.options import FitOptions, fit_options
from glmm_binomial.methods.penalty import (
    DevianceAndGradient,
    PenalizedObjective,
    bind_priors,
    penalized_glm,
    plus_penalty,
    with_penalty,
    with_prior_runaway,
)
from glmm_binomial.methods.scaling import check_in_user_units, to_user
from glmm_binomial.methods.structured_vb import VariationalBayes
from glmm_binomial.methods.variational import MeanFieldVB
from glmm_binomial.model.covariance import make_structure
from glmm_binomial.model.data import ModelData, RandomBlock
from glmm_binomial.model.design import DesignInfo
from glmm_binomial.model.formula import ParsedFormula, parse_formula
from glmm_binomial.model.frame import label_keys
from glmm_binomial.model.separation import Separation
from glmm_binomial.model.validation import emit_fit_warnings
from glmm_binomial.numerics.optimize import (
    Estimates,
    StartPoint,
    better_of_basins,
    conditional_beta,
    given_point,
    minimize_deviance,
    off_boundary,
)
from glmm_binomial.numerics.pirls import step_bound

FloatArray = NDArray[np.float64]
LOG = logging.getLogger(__name__)

KEY_COLUMN = "__glmm_key__"
"""The partitioning factor's labels as R's as.character (frame.label_keys), which the rows are
shuffled on: 1 in one partition and "1" in another are one level, and land together."""

EXTRA_MESSAGE = (
    "fitting a Dask DataFrame needs the optional extra 'dask': "
    "pip install 'glmm-binomial[dask]' (dask[dataframe] and distributed)"
)
RETURN_MEMORY_ROWS = 5_000_000
"""From this many rows on, the workers return free memory to the operating system after every
evaluation (glibc's allocator keeps the pages freed between the partitions' arrays otherwise)."""
IN_MEMORY = "fit in memory: glmm_binomial.fit(formula, ddf.compute())"
PLAN_GRAPH_BYTES = "2GB"
"""Graph size below which distributed does not warn about a large graph when the partitions
are built: the graph carries the PartitionPlan (every level label) once, on purpose."""
PARTITION_ROWS = 100_000
"""By default the shuffle merges the frame's partitions down to one per this many complete
rows (default_partitions): every evaluation runs one task per partition, so a frame read as
many small files (600 rows in 200 partitions took 35 s) is merged into partitions large enough
to outweigh a task's cost. Chosen from the rows alone, not the cluster's size, so that the same
data give the same bits on any cluster."""
MIN_PARTITIONS = 8
"""...but not below this many (or the frame's own number, if smaller), so that the workers of a
small cluster share the evaluations."""


def _import_dask() -> tuple[Any, Any]:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise ImportError(f"{EXTRA_MESSAGE} ({exc})") from None
    return dask, distributed


def fit_dask(
    formula: str,
    data: Any,
    options: FitOptions | None = None,
    weights: str | None = None,
    offset: str | None = None,
    client: Any = None,
    npartitions: int | None = None,
    stacklevel: int = 3,
    family: Family = BINOMIAL_LOGIT,
) -> DaskGLMMResult:
    """Fit a binomial GLMM to a Dask DataFrame on a Dask distributed cluster.

    The numbers are those of the in-memory fit (glmm_binomial.fit on the computed frame) up to
    the order of floating-point sums. client: a distributed.Client, or a scheduler address
    ('tcp://host:8786'); None uses the current client (distributed.get_client()).
    options: the FitOptions (methods.options; None: the defaults, method "laplace"); its method
    object fits: Laplace, Agq (one grouping factor, or nested ones), VariationalBayes (method
    'vb', structured_vb.py) or MeanFieldVB (method 'vb_meanfield', vb.py), each with its own
    settings as in memory. npartitions: partitions after the shuffle on the outermost grouping
    factor (None: as many as data has, merged down to one per PARTITION_ROWS rows but not below
    MIN_PARTITIONS; default_partitions). weights and offset must be column names. family: the
    binomial or the beta-binomial with any link (the variational methods fit the binomial
    logit only: api.refuse_on_dask).
    Every grouping factor must be nested in one outermost factor, or (Laplace) crossed with it
    with at most crossed.DASK_CROSSED_LIMIT random effects in all. A method that rescales
    (methods.maximum_likelihood) is estimated on internally centred and scaled columns
    (chosen from the columns' moments combined over the partitions), mapped back exactly and
    checked on the user's columns; a partition whose columns were changed keeps both versions of
    them while the fit runs. The fit's warnings are emitted (warnings.warn) as fit() emits them,
    and the method's checks are run (on the structure learned, and on stand-in rows for the
    identifiability check).
    """
    dask, distributed = _import_dask()
    if not isinstance(formula, str):
        raise ValueError("formula must be a string such as 'y ~ x + (1 | g)'")
    options = options or fit_options()
    if npartitions is not None:
        positive_int(npartitions, "npartitions")
    parsed = parse_formula(formula)
    if not parsed.random:
        raise ValueError(
            f"formula '{formula}' has no random-effect term such as (1 | group); "
            "for a plain logistic regression use a GLM"
        )
    columns = list(data.columns)
    missing = [v for v in parsed.variables if v not in columns]
    if missing:
        raise ValueError(
            f"formula '{formula}' uses column(s) not in data: {', '.join(map(repr, missing))}; "
            f"available: {', '.join(map(str, columns))}"
        )
    for name, value in (("weights", weights), ("offset", offset)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"with a Dask DataFrame, {name} must be a column name")
        if value is not None and value not in columns:
            raise ValueError(f"{name} names column '{value}', which is not in data")
    _check_supported(options.method)
    nesting = nesting_plan(parsed)
    client, own_client = _resolve_client(distributed, client)
    try:
        # Task-based shuffles: deterministic, and cheap at the sizes of the learning pass. The
        # client is made current: distributed.wait (and Dask itself) use the latest client
        # otherwise, and waiting on futures through another client's loop never sees them end.
        with dask.config.set({"dataframe.shuffle.method": "tasks"}), client.as_current():
            result = _fit(
                dask, client, parsed, data, options, weights, offset, npartitions, nesting, family
            )
    finally:
        if own_client:
            client.close()
    emit_fit_warnings(result.warnings, stacklevel=stacklevel)
    return result


def _check_supported(method: Method) -> None:
    """Refuse a method the Dask fit does not implement: Laplace, variational Bayes (structured
    and mean-field) and AGQ fit nested factors, each partition's objective the method's own on
    whole levels of the outermost factor (Laplace also factors crossed with it, refused for
    the others once the learning pass has found them; AGQ's own limits, a scalar effect at
    each level of several factors, refused by the partitions' objectives, as in memory)."""
    if isinstance(method, (Laplace, VariationalBayes, MeanFieldVB)):
        return
    if isinstance(method, LikelihoodMethod):
        return
    if method.posterior:
        raise ValueError(
            f"method={method.name!r} is not available on a Dask DataFrame: fit ddf.compute() in "
            "memory for it, or use method='vb' (structured variational Bayes, fitted on the "
            "partitions)"
        )
    raise ValueError(f"method={method.name!r} is not available on a Dask DataFrame; {IN_MEMORY}")


def default_partitions(data_partitions: int, rows: int) -> int:
    """The number of partitions after the shuffle when the caller gives none: the data's own,
    merged down to one per PARTITION_ROWS rows but not below MIN_PARTITIONS."""
    return min(data_partitions, max(MIN_PARTITIONS, -(-rows // PARTITION_ROWS)))


def _partition_kind(method: Method, crossed: tuple[int, ...]) -> type[Partition]:
    """The kind of partition that evaluates `method`'s share (partition.PartitionPlan.kind)."""
    if crossed:
        return CrossedPartition
    if isinstance(method, LikelihoodMethod):
        return ModePartition
    if isinstance(method, VariationalBayes):
        return StructuredPartition
    return VariationalPartition


def _fit(
    dask: Any,
    client: Any,
    parsed: ParsedFormula,
    data: Any,
    options: FitOptions,
    weights: str | None,
    offset: str | None,
    npartitions: int | None,
    nesting: tuple[list[str], list[tuple[str, ...]]],
    family: Family,
) -> DaskGLMMResult:
    method = options.method
    # 1. The learning pass.
    learned = learn(dask, client, parsed, data, weights, offset, nesting)
    design = learned.design
    if learned.crossed_groups and not isinstance(method, Laplace):
        # Structured VB's H couples partitions that share a crossed factor's levels; the
        # mean-field ELBO's sums decompose over any rows, but its reported log-likelihood
        # (Laplace at the posterior means) needs the crossed Laplace objective: not wired up.
        raise not_decomposable(
            f"method={method.name!r} needs every grouping factor nested in one outermost "
            "factor; factors crossed with it are fitted by method='laplace'"
        )
    # The method's checks on the structure alone (no rows: VB's independent terms), before
    # any partition is built.
    structure = rowless_model(
        (), _blocks(design, _term_columns(design)), log_binomial_constant=0.0, rows=0, family=family
    )
    method.check(structure, design)
    crossed = crossed_terms(parsed, design.random_specs, learned.crossed_groups)
    plan = PartitionPlan(design, options, _partition_kind(method, crossed), crossed, family)

    # 2. Shuffle once on the partitioning factor; each partition becomes a ModelData and an
    # objective on its worker.
    complete = data[learned.used].dropna()
    with_ids = complete.map_partitions(_add_row_ids, meta=_add_row_ids(complete._meta))
    variable = learned.partition_variable
    keyed = with_ids.map_partitions(_with_key, variable, meta=_with_key(with_ids._meta, variable))
    shuffled = keyed.shuffle(
        on=KEY_COLUMN,
        npartitions=npartitions or default_partitions(data.npartitions, learned.n_complete),
        shuffle_method="tasks",
    )
    parts = shuffled.to_delayed()
    build = dask.delayed(build_partition, pure=True)
    started = time.perf_counter()
    # The plan holds every level of the grouping factors (a million labels at scale): one node
    # of the graph that every build depends on, so it is sent once, and (unlike scattered data,
    # which Dask's memory manager may keep on one worker only) rebuilt from the graph when the
    # worker holding it is lost.
    shared = dask.delayed(plan, pure=False, traverse=False)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": PLAN_GRAPH_BYTES}):
        # Only `partitions` holds the futures, so that replace() can release the first ones.
        states = client.compute([build(p, shared) for p in parts])
    partitions = Partitions(
        client,
        states,
        options.blas_threads,
        return_memory=learned.n_complete >= RETURN_MEMORY_ROWS,
    )
    del states
    try:
        partitions.drop_empty()
        return _estimate(partitions, plan, learned, started)
    finally:
        if crossed:
            forget_partitions(client, partitions)
        partitions.release()


def _term_columns(design: DesignInfo) -> list[tuple[str, ...]]:
    """The columns of each random term, from its model spec."""
    return [
        ("(Intercept)",) if s.model_spec is None else tuple(column_names(s.model_spec))
        for s in design.random_specs
    ]


def _blocks(design: DesignInfo, terms: list[tuple[str, ...]]) -> tuple[RandomBlock, ...]:
    """The random blocks with the levels of the whole data set and no rows, each with its
    term's covariance structure."""
    return tuple(
        RandomBlock(
            ":".join(spec.term.group),
            names,
            np.zeros(0, dtype=np.intp),
            spec.levels,
            np.zeros((0, len(names))),
            make_structure(spec.term.structure, names, spec.term.text),
        )
        for spec, names in zip(design.random_specs, terms, strict=True)
    )


def _estimate(
    partitions: Partitions, plan: PartitionPlan, learned: Learned, started: float
) -> DaskGLMMResult:
    """Steps 3: the start, the method's fit on the partitions, the result."""
    method, n_complete = plan.options.method, learned.n_complete
    facts: list[PartitionFacts] = partitions.read("facts")
    first = facts[0]
    all_names, log_constant = first.fixed_names, sum(f.log_binomial_constant for f in facts)
    blocks = _blocks(plan.design, list(first.block_terms))
    start = first_passes(
        partitions, method, len(all_names), plan.family, [b.covariance for b in blocks]
    )
    if start.bernoulli:
        # The family's check on the rows (skipped on the rowless structure): every row one
        # trial is what it can refuse (the beta-binomial's dispersion needs more).
        one = np.ones(1)
        plan.family.check_data(one, one)
    fixed_names = tuple(all_names[j] for j in start.kept)
    info = result_design(plan.design, fixed_names, all_names, start)
    stand_in = identifiability_stand_in(start, blocks, n_complete)
    if stand_in is not None:
        method.check(stand_in, info)
    surrogate = rowless_model(
        fixed_names,
        blocks,
        log_binomial_constant=0.0,
        rows=0,
        family=plan.family,
        z_spread=start.z_spread,
    )
    # The shuffle and the partitions' construction leave freed memory scattered between the
    # arrays the partitions keep, which the allocator does not return by itself.
    partitions.client.run(return_free_memory)
    LOG.info("shuffle, partitions, aliasing and scaling: %.1f s", time.perf_counter() - started)
    model = rowless_model(
        fixed_names, blocks, log_binomial_constant=log_constant, rows=n_complete, family=plan.family
    )
    if isinstance(method, LikelihoodMethod):
        output = _maximum_likelihood(partitions, plan, method, start, surrogate, first, n_complete)
    elif isinstance(method, VariationalBayes):
        started = time.perf_counter()
        output = require_finite(
            fit_partitioned_structured_vb(partitions.advance, partitions.read, model, method)
        )
        LOG.info("structured variational optimizer: %.1f s", time.perf_counter() - started)
    else:
        assert isinstance(method, MeanFieldVB)
        started = time.perf_counter()
        output = require_finite(fit_partitioned_vb(partitions.read, model, method))
        LOG.info("variational optimizer: %.1f s", time.perf_counter() - started)
    return DaskGLMMResult(
        model, output, design=info, conf_level=plan.options.conf_level, method_object=method
    )


def _maximum_likelihood(
    partitions: Partitions,
    plan: PartitionPlan,
    method: LikelihoodMethod,
    start: Start,
    surrogate: ModelData,
    first: PartitionFacts,
    n_complete: int,
) -> FitOutput:
    """minimize_deviance on the partitions' objective (nested or crossed), the conditional
    modes, the separation check, and back to the user's units (as LikelihoodMethod.fit)."""
    started = time.perf_counter()
    control = method.control
    # Priors in the user's units, bound to the internal columns as in memory (LikelihoodMethod
    # .fit); the posterior mode is searched on the deviance plus the prior deviance.
    maps = None if start.scaling.is_identity else start.scaling
    penalty = bind_priors(
        method.priors,
        surrogate,
        None if maps is None else maps.fixed,
        None if maps is None else maps.blocks,
    )
    beta, info_factor = glm_start(partitions, start, control, plan.family)
    blocks = surrogate.blocks
    n_levels, ks = [b.n_levels for b in blocks], [b.k for b in blocks]
    objective: NestedObjective | CrossedObjective
    information: Callable[[FloatArray, FloatArray], FloatArray] | None
    if plan.crossed:
        q_c = crossed_size(n_levels, ks, plan.crossed)
        objective = CrossedObjective(
            PinnedRunner(partitions),
            q_c,
            method.pirls_control,
            partitions.blas_threads,
            step_bound(plan.family),
        )
        information = objective.fixed_information
    else:
        objective = NestedObjective(partitions.advance, partitions.read)
        # The fixed-effects information whitens beta where the method's objective offers it
        # (as the in-memory fits: Laplace's does, AGQ's uses the GLM's).
        information = objective.fixed_information if first.has_fixed_information else None
    theta, factor, curvature = theta_start(partitions, surrogate, beta, control)
    begin = StartPoint(
        theta, conditional_beta(beta, factor, start.offset_part), info_factor, curvature
    )
    deviance_and_gradient = objective.deviance_and_gradient
    name = method.name
    if penalty is not None:
        target = PenalizedObjective(objective, penalty)
        deviance_and_gradient = target.deviance_and_gradient
        name = f"{method.name} + prior deviance"
        if information is not None:
            information = target.fixed_information
        if penalty.fixef is not None:
            # As penalized_start in memory: beta from the GLM with the prior (the GLM's own
            # runs to infinity under separation), theta as started.
            beta, info_factor = penalized_glm(lambda b: glm_sums(partitions, b), penalty, control)
            begin = StartPoint(theta, beta, info_factor)

    def search(point: StartPoint, ends: Sequence[Estimates] = ()) -> Estimates:
        return minimize_deviance(
            surrogate,
            deviance_and_gradient,
            control,
            objective.counters,
            name,
            point,
            fixed_information=information,
            ends=ends,
        )

    glm_beta = beta

    def search_from(
        theta: FloatArray, given: FloatArray | None, ends: Sequence[Estimates]
    ) -> Estimates:
        # As the in-memory fit's later searches: modes from u = 0, the start from the given
        # estimates (given_point, the GLM's information summed over the partitions), or from
        # the GLM's fixed effects where none are given (start_point's).
        objective.reset()
        if given is None:
            moved = off_boundary(
                surrogate, theta, control.zero_start, control.boundary_tol, control.saturation_start
            )
            return search(StartPoint(moved, glm_beta, info_factor, None), ends)
        glm_information = glm_sums(partitions, given)[1]
        point = given_point(surrogate, control, theta, given, glm_information, lambda: info_factor)
        return search(point, ends)

    initial = search(begin)
    # The searches from other starts of the in-memory fit (a singular end of a vector term).
    estimates = better_of_basins(surrogate, control, initial, search_from)
    label, n_agq = LOGLIK_LABEL, 1
    if isinstance(method, Agq):
        # The rule the partitions' objectives use (product or sparse grid, by the effect's
        # dimension and the method's QuadratureControl), as fit_agq records it.
        assert first.rule_kind is not None and first.n_nodes is not None
        label, n_agq = loglik_label(method.n_agq, first.rule_kind), method.n_agq
        tolerances = quadrature_tolerances(method.n_agq, first.n_nodes, method.quadrature_control)
        summary = dataclasses.replace(
            estimates.summary, tolerances={**estimates.summary.tolerances, **tolerances}
        )
        estimates = dataclasses.replace(estimates, summary=summary)
    theta, beta = estimates.theta, estimates.beta
    LOG.info("optimizer: %.1f s", time.perf_counter() - started)
    started = time.perf_counter()
    try:
        if isinstance(objective, CrossedObjective):
            ranef, ranef_cov = objective.conditional_effects(
                theta, beta, n_levels, ks, plan.crossed
            )
        else:
            ranef, ranef_cov = objective.conditional_effects(theta, beta, n_levels, ks)
    except np.linalg.LinAlgError:
        # As laplace.finish_fit; the linear programs that would name the separation need
        # every row.
        raise run_off_error(surrogate, theta, beta, None) from None
    # On the internal columns, as the in-memory fit checks them; a fixed effect with a proper
    # prior has a finite posterior mode whatever the data, so it is not screened.
    screened = beta if penalty is None else np.where(penalty.covered(), 0.0, beta)
    separation = separation_check(
        partitions,
        surrogate,
        start,
        theta,
        screened,
        n_complete,
        control.separation_screen,
        control.column_runaway_screen,
    )
    LOG.info("conditional modes and checks: %.1f s", time.perf_counter() - started)
    if isinstance(separation[1], Separation):
        estimates = verified_off_path(
            surrogate, estimates, separation[1], deviance_and_gradient, control
        )
    output = fit_output(
        surrogate,
        estimates,
        control,
        method.name,
        label,
        tuple(ranef),
        tuple(ranef_cov),
        separation,
        n_agq,
    )
    # The fitted eta at the log link's bound, as laplace.finish_fit.
    output = with_link_bound(output, plan.family, objective.rows_at_link_bound)
    if isinstance(objective, NestedObjective):
        output = with_quadrature_bound(output, plan.family, objective.rows_past_bound)
    # Whether the prior outweighs the likelihood further out (as in memory; the rows'
    # random-effect SDs read over the partitions only past runaway_rows' bound).
    output = with_prior_runaway(
        output,
        penalty,
        lambda: runaway_rows(partitions, surrogate, start, theta, control.separation_screen),
        deviance_and_gradient,
        control,
    )
    output = with_penalty(output, penalty)
    if not start.scaling.is_identity:
        output = to_user(surrogate, start.scaling, output)
        user_check: DevianceAndGradient
        if isinstance(objective, CrossedObjective):
            user_check = CrossedObjective(
                PinnedRunner(partitions, user=True),
                objective.q_c,
                method.pirls_control,
                partitions.blas_threads,
                objective.upper,
            ).deviance_and_gradient
        else:
            user_check = objective.user_deviance_and_gradient
        if penalty is not None:
            # The priors bound to the user's columns (no maps), as the in-memory check's.
            user_penalty = bind_priors(method.priors, surrogate)
            assert user_penalty is not None
            user_check = functools.partial(plus_penalty, user_check, user_penalty)
        output = check_in_user_units(output, user_check, control)
    return final_checks(output)  # as LikelihoodMethod.fit


def _add_row_ids(frame: pd.DataFrame, partition_info: dict[str, Any] | None = None) -> Any:
    number = 0 if partition_info is None else int(partition_info["number"])
    out = frame.copy(deep=False)
    out[ROW_COLUMN] = (np.int64(number) << np.int64(40)) + np.arange(len(frame), dtype=np.int64)
    return out


def _with_key(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    out = frame.copy(deep=False)
    keys = label_keys(frame[column].to_numpy())
    out[KEY_COLUMN] = pd.Series(keys, index=frame.index, dtype=object)
    return out


def _resolve_client(distributed: Any, client: Any) -> tuple[Any, bool]:
    """The client to use and whether this module created it (then it closes it)."""
    if client is None:
        try:
            return distributed.get_client(), False
        except ValueError:
            raise ValueError(
                "fitting a Dask DataFrame needs a Dask distributed client: start one "
                "(distributed.Client() for a local cluster, or Client('tcp://host:8786') for a "
                "running scheduler) or pass client= a Client or a scheduler address"
            ) from None
    if isinstance(client, str):
        try:
            return distributed.Client(client), True
        except OSError as error:
            raise OSError(
                f"client={client!r}: could not connect to a Dask scheduler there ({error})"
            ) from None
    if isinstance(client, distributed.Client):
        if client.status in ("closing", "closed"):
            raise ValueError(
                "client is closed: pass an open distributed.Client or a scheduler address"
            )
        return client, False
    raise ValueError(f"client must be a distributed.Client or a scheduler address, got {client!r}")
