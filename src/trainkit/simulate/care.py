"""Inside each period of care: episodes (legal status and placement), missing episodes, the
adoption process, and care leavers' outcomes on their 17th to 21st birthdays.

Works on the ``care_periods`` table from :mod:`trainkit.simulate.social_care`, vectorised over
periods: each period's changes of legal status and of placement are drawn as dated events, merged,
and turned into SSDA903-style episodes (a new episode whenever legal status or placement changes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..parameters import Parameters
from .context import NAT, Cohort, add_years, age_in_years
from .geography import Geography
from .schema import Column, Table

DAYS = 365.25

LEGAL_STATUS = {
    "C1": "Interim care order",
    "C2": "Full care order",
    "D1": "Freeing order granted",
    "E1": "Placement order granted",
    "V2": "Single period of accommodation under section 20",
    "L1": "Under police protection",
    "L2": "Emergency protection order",
    "J1": "Remanded to LA accommodation or youth detention",
}
PLACEMENT = {
    "A3": "Placed for adoption with consent with current foster carer(s)",
    "A4": "Placed for adoption with consent not with current foster carer(s)",
    "A5": "Placed for adoption with placement order with current foster carer(s)",
    "A6": "Placed for adoption with placement order not with current foster carer(s)",
    "H5": "Semi-independent living accommodation",
    "K2": "Children's home",
    "P1": "Placed with parent(s)",
    "P2": "Independent living",
    "R1": "Residential care home",
    "R3": "Family centre or mother and baby unit",
    "S1": "Residential school",
    "U1": "Foster placement with relative or friend, long term",
    "U3": "Foster placement with relative or friend, other",
    "U4": "Foster placement with other carer, long term",
    "U5": "Foster placement with other carer, fostering for adoption",
    "U6": "Foster placement with other carer, other",
    "Z1": "Other placement",
}
RNE = {
    "S": "Started to be looked after",
    "L": "Change of legal status only",
    "P": "Change of placement and carer(s) only",
    "B": "Change of legal status and placement and carer(s)",
}
PROVIDER_KIND = {
    "U1": "kinship",
    "U3": "kinship",
    "U4": "foster",
    "U5": "foster",
    "U6": "foster",
    "K2": "residential",
    "R1": "residential",
    "S1": "residential",
    "H5": "semi_independent",
    "P2": "semi_independent",
    "P1": "parents",
    "R3": "other",
    "Z1": "other",
    "A3": "foster",
    "A4": "other",
    "A5": "foster",
    "A6": "other",
}

TABLES = (
    Table(
        "care_episodes",
        "SSDA903 episodes: a new episode starts whenever legal status or placement changes.",
        (
            Column("period_id", "int64", "Period of care.", nullable=False),
            Column("person_id", "int64", "Child.", nullable=False),
            Column("la_code", "int16", "DfE LA number."),
            Column("episode", "int16", "Episode number within the period, from 1."),
            Column("start_date", "date", "DECOM: date the episode started."),
            Column(
                "end_date",
                "date",
                "DEC: date the episode ceased; empty if open at the census date.",
            ),
            Column("reason_new_episode", "string", "RNE.", RNE),
            Column("legal_status", "string", "LS.", LEGAL_STATUS),
            Column("category_of_need", "string", "CIN: category of need (N1-N8)."),
            Column("placement", "string", "PLACE: placement type.", PLACEMENT),
            Column("placement_provider", "string", "PLACE_PROVIDER (PR0-PR5)."),
            Column("placement_postcode", "string", "PL_POST: postcode of the placement."),
            Column("home_postcode", "string", "HOME_POST: the child's home postcode on entry."),
            Column(
                "reason_place_change", "string", "REASON_PLACE_CHANGE, for changes of placement."
            ),
            Column(
                "reason_ended",
                "string",
                "REC: X1 when another episode follows, else the period's reason.",
            ),
        ),
        key=("period_id", "episode"),
    ),
    Table(
        "missing_episodes",
        "Episodes of a looked-after child missing (M) or away without authorisation (A).",
        (
            Column("period_id", "int64", "Period of care.", nullable=False),
            Column("person_id", "int64", "Child.", nullable=False),
            Column("la_code", "int16", "DfE LA number."),
            Column(
                "missing_type",
                "string",
                "M missing, A away without authorisation.",
                {"M": "Missing", "A": "Away"},
            ),
            Column("start_date", "date", "MIS_START."),
            Column("end_date", "date", "MIS_END."),
        ),
    ),
    Table(
        "adoptions",
        "The adoption process of children adopted from care (AD1 and placed-for-adoption data).",
        (
            Column("period_id", "int64", "Period of care.", nullable=False),
            Column("person_id", "int64", "Child.", nullable=False),
            Column("la_code", "int16", "DfE LA number."),
            Column(
                "date_should_be_placed",
                "date",
                "DATE_INT: decision that the child should be placed for adoption.",
            ),
            Column("date_matched", "date", "DATE_MATCH: matched with adopters."),
            Column("date_placed", "date", "DATE_PLACED: placed for adoption."),
            Column("date_adopted", "date", "Adoption order (the period's end)."),
            Column("foster_carer", "bool", "FOSTER_CARE: adopted by former foster carer(s)."),
            Column("number_of_adopters", "int8", "NB_ADOPTR."),
            Column("sex_of_adopters", "string", "SEX_ADOPTR (M1, F1, MM, FF, MF)."),
            Column("legal_status_of_adopters", "string", "LS_ADOPTR (L0, L11, L12, L2, L3, L4)."),
        ),
    ),
    Table(
        "care_leaver_outcomes",
        "Care leavers' circumstances around their 17th to 21st birthdays (OC3).",
        (
            Column("person_id", "int64", "Care leaver.", nullable=False),
            Column("la_code", "int16", "DfE number of the LA responsible."),
            Column("age", "int8", "Birthday: 17 to 21."),
            Column("birthday", "date", "The birthday the outcome refers to."),
            Column("in_touch", "string", "IN_TOUCH (YES, NO, DIED, REFU, NREQ, RHOM)."),
            Column("activity", "string", "ACTIV (F1 ... G6, 0)."),
            Column(
                "accommodation",
                "string",
                "ACCOM: type letter and 1 suitable / 2 unsuitable; 0 not known.",
            ),
        ),
    ),
)


def _pick(rng, codes, probs, n=None):
    """Row-wise categorical draw: ``probs`` is (n, k) or (k,)."""
    codes = np.asarray(codes)
    probs = np.asarray(probs, float)
    if probs.ndim == 1:
        probs = np.broadcast_to(probs, (n, len(codes)))
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(cdf))
    return codes[np.minimum((u[:, None] > cdf).sum(axis=1), len(codes) - 1)]


def _pick_map(rng, shares: dict, n: int):
    return _pick(rng, list(shares), [float(v) for v in shares.values()], n)


def _band(age, uasc):
    return np.where(uasc, 5, np.select([age < 1, age < 5, age < 10, age < 16], [0, 1, 2, 3], 4))


def simulate_care(
    cohort: Cohort,
    social_care: dict[str, pd.DataFrame],
    geo: Geography,
    params: Parameters,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    """Episodes, missing episodes, adoptions and care leavers' outcomes for one shard."""
    periods = social_care["care_periods"]
    referrals = social_care["referrals"][["referral_id", "primary_need"]]
    periods = periods.merge(referrals, on="referral_id", how="left")
    row = np.searchsorted(cohort.person_id, periods["person_id"].to_numpy())
    start = periods["start_date"].to_numpy("datetime64[D]")
    end = periods["end_date"].to_numpy("datetime64[D]")
    stop = np.where(np.isnat(end), cohort.census_date, end)
    adoptions = _adoptions(periods, start, end, params, rng)
    return {
        "care_episodes": _episodes(
            cohort, periods, row, start, end, stop, adoptions, geo, params, rng
        ),
        "missing_episodes": _missing(periods, row, start, stop, cohort, params, rng),
        "adoptions": adoptions,
        "care_leaver_outcomes": _care_leavers(cohort, periods, row, start, stop, params, rng),
    }


def _episodes(cohort, periods, row, start, end, stop, adoptions, geo, params, rng):
    n = len(periods)
    dob = cohort.date_of_birth[row]
    uasc = periods["uasc"].to_numpy(bool)
    route = periods["route"].to_numpy()
    age0 = periods["age_at_start"].to_numpy()
    length = (stop - start).astype(np.int64)
    pid = periods["period_id"].to_numpy()

    # legal status timeline: start status, an optional emergency step, then the final order
    ls = params["care.initial_legal_status"]
    first_ls = _pick(rng, ls["codes"], np.where(age0[:, None] < 10, ls["under10"], ls["age10plus"]))
    first_ls = np.where(uasc, "V2", np.where(route == "remand", "J1", first_ls))
    ev_pid, ev_date, ev_ls = [pid], [start], [first_ls]
    days = params["care.emergency_order_days"]
    lo = np.where(first_ls == "L1", days["L1"][0], days["L2"][0])
    hi = np.where(first_ls == "L1", days["L1"][1], days["L2"][1])
    emergency = np.isin(first_ls, ["L1", "L2"])
    after_emergency = np.where(rng.random(n) < 0.6, "C1", "V2")
    after_emergency = np.where(route == "adopted", "C1", after_emergency)
    t1 = start + rng.integers(lo, hi + 1)
    ok = emergency & (t1 < stop)
    ev_pid.append(pid[ok]), ev_date.append(t1[ok]), ev_ls.append(after_emergency[ok])
    cur = np.where(ok, after_emergency, first_ls)
    y0, y1 = params["care.care_order_after_years"]
    t2 = np.where(ok, t1, start) + (rng.uniform(y0, y1, n) * DAYS).astype(np.int64)
    final = np.where(route == "adopted", "E1", "C2")
    wants_order = np.isin(route, ["adopted", "age18", "independent", "sgo", "cao", "other"]) & (
        (cur == "C1") | ((cur == "V2") & (route == "adopted"))
    )
    ok2 = wants_order & ~uasc & (t2 < stop)
    ev_pid.append(pid[ok2]), ev_date.append(t2[ok2]), ev_ls.append(final[ok2])
    legal = pd.DataFrame(
        {
            "period_id": np.concatenate(ev_pid),
            "date": np.concatenate(ev_date),
            "legal_status": np.concatenate(ev_ls),
        }
    )

    # placement timeline: a first placement, moves at random times, adoption placements
    moves_rate = np.asarray(params["care.placement_moves_per_year"], float)[_band(age0, uasc)]
    k = rng.poisson(moves_rate * length / DAYS)
    mp = np.repeat(np.arange(n), k)
    move_dates = (
        start[mp] + 1 + (rng.random(len(mp)) * np.maximum(length[mp] - 1, 1)).astype(np.int64)
    )
    adopted = pd.Index(pid).get_indexer(adoptions["period_id"])
    placed = adoptions["date_placed"].to_numpy("datetime64[D]")
    place_rows = np.r_[np.arange(n), mp, adopted]
    place_dates = np.r_[start, move_dates, placed]
    kind = np.r_[np.zeros(n, int), np.ones(len(mp), int), np.full(len(adopted), 2)]
    # drop moves after an adoptive placement
    adopt_from = np.full(n, np.datetime64("2262-01-01", "D"))
    adopt_from[adopted] = placed
    keep = (kind != 1) | (place_dates < adopt_from[place_rows])
    place_rows, place_dates, kind = place_rows[keep], place_dates[keep], kind[keep]
    age_then = age_in_years(dob[place_rows], place_dates)
    sh = params["care.placement_shares"]
    table = np.array(
        [sh[b] for b in ("under1", "age1to4", "age5to9", "age10to15", "age16plus", "uasc")]
    )
    # UASC under 16 are placed as other children of their age (no semi-independent living)
    probs = table[_band(age_then, uasc[place_rows] & (age_then >= 16))]
    placement = _pick(rng, sh["codes"], probs)
    with_fc = np.zeros(len(kind), bool)
    with_fc[kind == 2] = (
        adoptions["foster_carer"].to_numpy(bool)[keep[-len(adopted) :]] if len(adopted) else []
    )
    placement = np.where(kind == 2, np.where(with_fc, "A5", "A6"), placement)
    placement = np.where(
        kind == 2,
        placement,
        np.where((placement == "U5") & (route[place_rows] != "adopted"), "U6", placement),
    )
    provider = np.empty(len(placement), dtype=object)
    kinds = np.vectorize(PROVIDER_KIND.get, otypes=[object])(placement)
    for kname, shares in params["care.placement_provider"].items():
        m = kinds == kname
        provider[m] = _pick_map(rng, shares, m.sum())
    # placement postcode: inside the LA mostly, otherwise elsewhere in England
    la_idx = geo.index_of(periods["la_code"].to_numpy()[place_rows])
    inside = rng.random(len(placement)) < params["care.placement_in_la_share"]
    other_la = rng.integers(0, len(geo.la_code), len(placement))
    pc_row = geo.sample_postcodes(rng, np.where(inside, la_idx, other_la))
    home = cohort.postcode_at(row, np.maximum(start, dob))
    pl_post = np.where(placement == "P1", home[place_rows], geo.postcode[pc_row])
    reasons = _pick_map(rng, params["care.placement_change_reasons"], len(placement))
    places = pd.DataFrame(
        {
            "period_id": pid[place_rows],
            "date": place_dates,
            "placement": placement,
            "placement_provider": provider,
            "placement_postcode": pl_post,
            "reason_place_change": np.where(kind == 0, None, reasons),
        }
    )

    ev = pd.concat([legal.assign(_l=True), places.assign(_p=True)], ignore_index=True)
    ev = ev.groupby(["period_id", "date"], sort=True).first().reset_index()
    ev[["_l", "_p"]] = ev[["_l", "_p"]].fillna(False).astype(bool)
    cols = ["legal_status", "placement", "placement_provider", "placement_postcode"]
    ev[cols] = ev.groupby("period_id")[cols].ffill()
    info = periods.set_index("period_id")
    first = ~ev["period_id"].duplicated()
    last = ~ev["period_id"].duplicated(keep="last")
    nxt = ev["date"].shift(-1)
    p_end = info.loc[ev["period_id"], "end_date"].to_numpy("datetime64[D]")
    ep_end = np.where(last, p_end, nxt.to_numpy("datetime64[D]"))
    rne = np.select([first, ev["_l"] & ev["_p"], ev["_l"]], ["S", "B", "L"], "P")
    rec = np.where(last, info.loc[ev["period_id"], "reason_ended"].to_numpy(object), "X1")
    rec = np.where(last & np.isnat(p_end), None, rec)
    rpc = np.where(
        np.isin(rne, ["P", "B"])
        & (ev["date"].to_numpy("datetime64[D]") >= np.datetime64("2016-04-01")),
        ev["reason_place_change"].to_numpy(object),
        None,
    )
    ep_row = pd.Index(pid).get_indexer(ev["period_id"])
    return pd.DataFrame(
        {
            "period_id": ev["period_id"].to_numpy(),
            "person_id": periods["person_id"].to_numpy()[ep_row],
            "la_code": periods["la_code"].to_numpy()[ep_row],
            "episode": ev.groupby("period_id").cumcount().to_numpy(np.int16) + 1,
            "start_date": ev["date"].to_numpy("datetime64[D]"),
            "end_date": ep_end,
            "reason_new_episode": rne,
            "legal_status": ev["legal_status"].to_numpy(object),
            "category_of_need": np.where(
                uasc, "N8", periods["primary_need"].fillna("N1").to_numpy(object)
            )[ep_row],
            "placement": ev["placement"].to_numpy(object),
            "placement_provider": ev["placement_provider"].to_numpy(object),
            "placement_postcode": ev["placement_postcode"].to_numpy(object),
            "home_postcode": home[ep_row],
            "reason_place_change": rpc,
            "reason_ended": rec,
        }
    )


def _missing(periods, row, start, stop, cohort, params, rng):
    p = params["care.missing_episodes"]
    dob = cohort.date_of_birth[row]
    from10 = np.maximum(start, add_years(dob, 10))
    years = np.maximum((stop - from10).astype(np.int64), 0) / DAYS
    propensity = rng.gamma(p["propensity_shape"], 1 / p["propensity_shape"], len(periods))
    k = rng.poisson(p["rate_per_year_10plus"] * years * propensity)
    idx = np.repeat(np.arange(len(periods)), k)
    span = np.maximum((stop - from10).astype(np.int64)[idx], 1)
    s = from10[idx] + (rng.random(len(idx)) * span).astype(np.int64)
    d = params["care.missing_days"]
    length = np.minimum(rng.geometric(1 / d["mean"], len(idx)) - 1, d["max"])
    # a child cannot go missing again before returning: drop an episode that starts on or before
    # the end of any earlier one in the same period
    order = np.lexsort((s, idx))
    s, idx, length = s[order], idx[order], length[order]
    e = np.minimum(s + length, stop[idx])
    ends = pd.Series(e.astype("datetime64[D]").astype(np.int64))
    before = ends.groupby(idx).cummax().groupby(idx).shift(1).to_numpy()
    keep = ~(s.astype(np.int64) <= np.nan_to_num(before, nan=-(2**40)))
    s, idx, e = s[keep], idx[keep], e[keep]
    out = pd.DataFrame(
        {
            "period_id": periods["period_id"].to_numpy()[idx],
            "person_id": periods["person_id"].to_numpy()[idx],
            "la_code": periods["la_code"].to_numpy()[idx],
            "missing_type": np.where(rng.random(len(idx)) < p["away_share"], "A", "M"),
            "start_date": s,
            "end_date": np.where(e >= cohort.census_date, NAT, e),
        }
    )
    return out.sort_values(["person_id", "start_date"], kind="stable").reset_index(drop=True)


def _adoptions(periods, start, end, params, rng):
    m = (periods["route"].to_numpy() == "adopted") & ~np.isnat(end)
    s, e = start[m], end[m]
    n = int(m.sum())
    ya, yb = params["care.adoption_stage_shares"]["placed_before_adoption_years"]
    placed = np.maximum(e - (rng.uniform(ya, yb, n) * DAYS).astype(np.int64), s + 30)
    matched = np.maximum(placed - rng.integers(7, 60, n), s + 20)
    share = params["care.adoption_stage_shares"]["decision"]
    decision = s + ((matched - s).astype(np.int64) * share * rng.uniform(0.6, 1.4, n)).astype(
        np.int64
    )
    decision = np.minimum(decision, matched - 1)
    a = params["care.adopters"]
    sex = _pick_map(rng, a["sex"], n)
    fc = rng.random(n) < a["foster_carer_share"]
    return pd.DataFrame(
        {
            "period_id": periods["period_id"].to_numpy()[m],
            "person_id": periods["person_id"].to_numpy()[m],
            "la_code": periods["la_code"].to_numpy()[m],
            "date_should_be_placed": decision,
            "date_matched": matched,
            "date_placed": placed,
            "date_adopted": e,
            "foster_carer": fc,
            "number_of_adopters": np.where(np.isin(sex, ["M1", "F1"]), 1, 2).astype(np.int8),
            "sex_of_adopters": sex,
            "legal_status_of_adopters": _pick_map(rng, a["legal_status"], n),
        }
    )


def _care_leavers(cohort, periods, row, start, stop, params, rng):
    """Relevant and former relevant children: 13 weeks in care since 14, in care at or after 16."""
    dob = cohort.date_of_birth[row]
    since14 = np.maximum((stop - np.maximum(start, add_years(dob, 14))).astype(np.int64), 0)
    days14 = pd.Series(since14).groupby(row).transform("sum").to_numpy()
    at16 = stop >= add_years(dob, 16)
    eligible = (
        (days14 >= 91) & at16 & ~periods["reason_ended"].isin(["E11", "E12", "E2"]).to_numpy()
    )
    # one leaver per child: their last eligible period
    e_idx = np.flatnonzero(eligible)
    last = pd.Series(e_idx).groupby(row[e_idx]).max().to_numpy()
    r = row[last]
    ages = np.arange(17, 22)
    bday = add_years(np.repeat(cohort.date_of_birth[r], len(ages)), np.tile(ages, len(r)))
    who = np.repeat(np.arange(len(last)), len(ages))
    age = np.tile(ages, len(r))
    observed = bday <= cohort.follow_up_end[r][who]
    died = ~np.isnat(cohort.date_of_death[r][who]) & (cohort.date_of_death[r][who] < bday)
    keep = (bday <= cohort.census_date) & (observed | died)
    who, age, bday, died = who[keep], age[keep], bday[keep], died[keep]
    n = len(who)
    young = age <= 18
    act = params["care.care_leaver_activity"]
    activity = np.where(
        young,
        _pick(rng, act["codes"], act["age17to18"], n),
        _pick(rng, act["codes"], act["age19to21"], n),
    )
    part = (rng.random(n) < act["part_time_share"]) & np.isin(activity, ["F1", "F2", "F4", "F5"])
    part_time = pd.Series(activity, dtype=object).str.replace("F", "P").to_numpy(object)
    activity = np.where(part, part_time, activity)
    acc = params["care.care_leaver_accommodation"]
    letter = np.where(
        young,
        _pick(rng, acc["types"], acc["age17to18"], n),
        _pick(rng, acc["types"], acc["age19to21"], n),
    )
    unsuitable = rng.random(n) < np.where(
        young, acc["unsuitable_share"]["age17to18"], acc["unsuitable_share"]["age19to21"]
    )
    unsuitable |= np.isin(letter, ["S", "X"])  # no fixed abode and custody are never suitable
    accommodation = letter.astype(object) + np.where(unsuitable, "2", "1").astype(object)
    in_touch = _pick_map(rng, params["care.care_leaver_in_touch"], n)
    in_touch = np.where(died, "DIED", in_touch)
    not_in_touch = np.isin(in_touch, ["NO", "REFU", "DIED", "RHOM"])
    return pd.DataFrame(
        {
            "person_id": cohort.person_id[r][who],
            "la_code": periods["la_code"].to_numpy()[last][who],
            "age": age.astype(np.int8),
            "birthday": bday,
            "in_touch": in_touch,
            "activity": np.where(not_in_touch, "0", activity),
            "accommodation": np.where(not_in_touch, "0", accommodation),
        }
    )
