"""Tests of the packaged reference data and its loaders (trainkit.reference)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from trainkit import reference

DFE_ETHNICITY_CODES = {
    "WBRI", "WIRI", "WOTH", "WIRT", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND",
    "APKN", "ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT",
}  # fmt: skip

# UK postcode in the standard single-space form (outward code, space, inward code).
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$")

RATES = (
    "cin_rate",
    "referral_rate",
    "cpp_rate",
    "cpp_start_rate",
    "cla_rate",
    "cla_start_rate",
    "cla_ceased_rate",
)


@pytest.fixture(scope="module")
def las() -> pd.DataFrame:
    return reference.local_authorities()


@pytest.fixture(scope="module")
def postcodes() -> pd.DataFrame:
    return reference.postcodes()


@pytest.fixture(scope="module")
def ethnicity() -> pd.DataFrame:
    return reference.ethnicity_shares()


# --- local authorities ---------------------------------------------------------------------------


def test_153_local_authorities_with_unique_codes(las: pd.DataFrame) -> None:
    assert len(las) == 153
    assert las["dfe_la_code"].is_unique
    assert las["ons_code"].is_unique
    assert las["dfe_la_code"].is_monotonic_increasing
    assert las["dfe_la_code"].between(200, 999).all()
    assert las["ons_code"].str.fullmatch(r"E(06|08|09|10)\d{6}").all()


def test_local_authority_figures_are_complete_and_positive(las: pd.DataFrame) -> None:
    assert not las.isna().any().any()
    assert (las["population_0_17"] > 0).all()
    for rate in RATES:
        assert (las[rate] >= 0).all(), rate
        assert las[f"imputed_{rate}"].dtype == bool
    # Most LAs publish every figure; only a handful are suppressed or not applicable.
    assert las[[f"imputed_{rate}" for rate in RATES]].to_numpy().sum() < 20


def test_imputed_rates_equal_the_national_rate(las: pd.DataFrame) -> None:
    for rate, count in (("cin_rate", "cin_31mar_2024"), ("cla_rate", "cla_31mar_2024")):
        imputed = las[f"imputed_{rate}"]
        assert imputed.any(), rate
        assert las.loc[imputed, rate].nunique() == 1
        published = las[~imputed]
        national = las[count].sum() / las["population_0_17"].sum() * 10_000
        # The national rate includes imputed LAs, so it is close to, not equal to, the published.
        published_rate = published[count].sum() / published["population_0_17"].sum() * 10_000
        assert las.loc[imputed, rate].iloc[0] == pytest.approx(national, rel=0.02)
        assert published_rate == pytest.approx(national, rel=0.02)


def test_rates_match_counts(las: pd.DataFrame) -> None:
    published = ~las["imputed_cla_rate"]
    rate = las.loc[published, "cla_31mar_2024"] / las.loc[published, "population_0_17"] * 10_000
    np.testing.assert_allclose(las.loc[published, "cla_rate"], rate, atol=0.006)


def test_need_index_weighted_mean_is_one(las: pd.DataFrame) -> None:
    mean = np.average(las["need_index"], weights=las["population_0_17"])
    assert mean == pytest.approx(1.0, abs=1e-6)
    assert (las["need_index"] > 0).all()
    # LAs really differ: the highest-need LA has several times the need of the lowest.
    assert las["need_index"].max() / las["need_index"].min() > 2


def test_need_index_follows_the_rates(las: pd.DataFrame) -> None:
    ranks = las[["need_index", "cla_rate", "cin_rate"]].rank()
    assert ranks["need_index"].corr(ranks["cla_rate"]) > 0.6
    assert ranks["need_index"].corr(ranks["cin_rate"]) > 0.6


# --- postcodes and synthetic areas ---------------------------------------------------------------


def test_every_la_has_postcodes_and_areas(las: pd.DataFrame, postcodes: pd.DataFrame) -> None:
    assert set(postcodes["la_code"]) == set(las["dfe_la_code"])
    per_la = postcodes.groupby("la_code").agg(
        n=("postcode", "size"), areas=("area_code", "nunique")
    )
    assert per_la["n"].min() >= 60
    assert per_la["n"].max() <= 400
    assert per_la["areas"].min() >= 5


def test_postcodes_are_well_formed_and_unique(postcodes: pd.DataFrame) -> None:
    assert postcodes["postcode"].map(lambda code: bool(POSTCODE.match(code))).all()
    assert postcodes["postcode"].is_unique
    assert list(postcodes.columns) == [
        "postcode",
        "la_code",
        "area_code",
        "deprivation_decile",
        "easting",
        "northing",
    ]


def test_postcodes_lie_in_england(postcodes: pd.DataFrame) -> None:
    # British National Grid extent of England (metres), Isles of Scilly to Northumberland.
    assert postcodes["easting"].between(80_000, 660_000).all()
    assert postcodes["northing"].between(0, 660_000).all()
    # Postcodes fall in the right LA: the Isles of Scilly (420) are exactly TR21 to TR25.
    scilly = postcodes["postcode"].str.match(r"^TR2[1-5] ")
    assert (scilly == (postcodes["la_code"] == 420)).all()


def test_areas_are_synthetic_and_nest_in_one_la(postcodes: pd.DataFrame) -> None:
    assert postcodes["area_code"].str.fullmatch(r"TKA\d{6}").all()
    assert (postcodes.groupby("area_code")["la_code"].nunique() == 1).all()
    assert (postcodes.groupby("area_code")["deprivation_decile"].nunique() == 1).all()
    assert postcodes.groupby("area_code").size().min() >= 5


def test_postcodes_sorted(postcodes: pd.DataFrame) -> None:
    keys = postcodes[["la_code", "area_code", "postcode"]]
    assert keys.equals(
        keys.sort_values(["la_code", "area_code", "postcode"]).reset_index(drop=True)
    )


def area_weights(las: pd.DataFrame, postcodes: pd.DataFrame) -> pd.DataFrame:
    """One row per area with its decile and the children it stands for."""
    areas = postcodes.groupby("area_code").agg(
        la_code=("la_code", "first"), decile=("deprivation_decile", "first")
    )
    per_la = areas["la_code"].map(areas["la_code"].value_counts())
    population = areas["la_code"].map(las.set_index("dfe_la_code")["population_0_17"])
    return areas.assign(weight=population / per_la)


def test_deciles_split_children_into_tenths(las: pd.DataFrame, postcodes: pd.DataFrame) -> None:
    areas = area_weights(las, postcodes)
    assert set(areas["decile"]) == set(range(1, 11))
    shares = areas.groupby("decile")["weight"].sum() / areas["weight"].sum()
    assert shares.between(0.07, 0.13).all(), shares


def test_deprivation_follows_need(las: pd.DataFrame, postcodes: pd.DataFrame) -> None:
    areas = area_weights(las, postcodes)
    deprivation = -areas.groupby("la_code")["decile"].mean()  # high = more deprived
    need = las.set_index("dfe_la_code")["need_index"].reindex(deprivation.index)
    rho = need.rank().corr(deprivation.rank())
    assert 0.5 < rho < 0.8


def test_deprivation_is_spatially_structured(postcodes: pd.DataFrame) -> None:
    areas = postcodes.groupby("area_code").agg(
        easting=("easting", "mean"),
        northing=("northing", "mean"),
        decile=("deprivation_decile", "first"),
    )
    xy = areas[["easting", "northing"]].to_numpy(dtype=float)
    decile = areas["decile"].to_numpy(dtype=float)
    sample = np.random.default_rng(1).choice(len(areas), size=500, replace=False)
    distances = np.sum((xy[sample, None, :] - xy[None, :, :]) ** 2, axis=2)
    distances[np.arange(len(sample)), sample] = np.inf
    nearest = np.argsort(distances, axis=1)[:, :5]
    neighbour_mean = decile[nearest].mean(axis=1)
    assert np.corrcoef(decile[sample], neighbour_mean)[0, 1] > 0.4


def test_las_differ_in_deprivation(las: pd.DataFrame, postcodes: pd.DataFrame) -> None:
    mean_decile = area_weights(las, postcodes).groupby("la_code")["decile"].mean()
    assert mean_decile.max() - mean_decile.min() > 4


# --- ethnicity -----------------------------------------------------------------------------------


def test_ethnicity_shares_sum_to_one_and_cover_all_codes(
    las: pd.DataFrame, ethnicity: pd.DataFrame
) -> None:
    assert set(ethnicity["dfe_la_code"]) == set(las["dfe_la_code"])
    assert len(ethnicity) == 153 * 20
    for la_code, shares in ethnicity.groupby("dfe_la_code"):
        assert set(shares["ethnicity"]) == DFE_ETHNICITY_CODES, la_code
        assert shares["share"].sum() == pytest.approx(1.0, abs=1e-6), la_code
    assert ethnicity["share"].between(0, 1).all()


def test_national_white_british_share(las: pd.DataFrame, ethnicity: pd.DataFrame) -> None:
    wide = ethnicity.pivot(index="dfe_la_code", columns="ethnicity", values="share")
    weights = las.set_index("dfe_la_code")["population_0_17"].reindex(wide.index)
    national = wide.mul(weights, axis=0).sum() / weights.sum()
    assert 0.6 < national["WBRI"] < 0.8
    # London is more diverse than the North East.
    region = las.set_index("dfe_la_code")["region"].reindex(wide.index)
    by_region = wide["WBRI"].groupby(region).mean()
    assert by_region["London"] < by_region["North East"] - 0.3


# --- loaders -------------------------------------------------------------------------------------


def test_loaders_return_independent_copies() -> None:
    first = reference.local_authorities()
    first.loc[:, "need_index"] = 0.0
    assert (reference.local_authorities()["need_index"] > 0).all()
    pcs = reference.postcodes()
    pcs.loc[:, "postcode"] = "changed"
    assert (reference.postcodes()["postcode"] != "changed").all()
