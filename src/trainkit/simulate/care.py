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
    "T": "Change of placement (but same carer(s)) only",
    "B": "Change of legal status and placement and carer(s)",
    "U": "Change of legal status and change of placement (but same carer(s))",
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
        "The adoption process of children on the adoption route (AD1 and placed-for-adoption "
        "data): one row per period of care whose decision to place for adoption was made, with "
        "the stages reached; date_adopted is empty while the process is under way at the census "
        "date (or if care ended otherwise).",
        (
            Column("period_id", "int64", "Period of care.", nullable=False),
            Column("person_id", "int64", "Child.", nullable=False),
            Column("la_code", "int16", "DfE LA number."),
            Column(
                "date_should_be_placed",
                "date",
                "DATE_INT: decision that the child should be placed for adoption.",
            ),
            Column("date_matched", "date", "DATE_MATCH: matched with adopters; empty if not yet."),
            Column("date_placed", "date", "Placed for adoption (A5/A6); empty if not yet."),
            Column("date_adopted", "date", "Adoption order (the period's end); empty if not yet."),
            Column(
                "foster_carer",
                "bool",
                "FOSTER_CARE: adopted by the child's foster carer(s) (placement A5); empty until "
                "placed.",
            ),
            Column("number_of_adopters", "int8", "NB_ADOPTR; empty until matched."),
            Column("sex_of_adopters", "string", "SEX_ADOPTR (M1, F1, MM, FF, MF)."),
            Column(
                "legal_status_of_adopters",
                "string",
                "LS_ADOPTR (L0, L11, L12, L2, L3, L4); L11 only for MF.",
            ),
            Column(
                "date_decision_ceased",
                "date",
                "DATE_PLACED_CEASED: the decision no longer stands (care ended otherwise, by death "
                "or emigration); empty otherwise.",
            ),
            Column(
                "reason_decision_ceased",
                "string",
                "REASON_PLACED_CEASED (RD1-RD4).",
                {
                    "RD1": "Child's needs changed subsequent to decision",
                    "RD2": "Court did not make placement order",
                    "RD3": "Prospective adopters could not be found",
                    "RD4": "Any other reason",
                },
            ),
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
    plan = _adoption_plan(periods, start, stop, params, rng)
    episodes, by_carers = _episodes(cohort, periods, row, start, stop, plan, geo, params, rng)
    return {
        "care_episodes": episodes,
        "missing_episodes": _missing(periods, row, start, stop, cohort, params, rng),
        "adoptions": _adoptions(periods, plan, by_carers),
        "care_leaver_outcomes": _care_leavers(cohort, periods, row, start, stop, params, rng),
    }


ADOPTED = ("E11", "E12")
"""Reasons a period ends with an adoption order."""

DECISION_CEASED_OTHER = "RD4"
"""REASON_PLACED_CEASED when an adoption-route period ends by death or emigration."""

PLANNED_LENGTH_DRAWS = 32
"""Draws of an adoption-route period's planned length, of which the first longer than the time
already spent is taken: a vectorised draw from the length distribution given that the period is
still open (or was cut short)."""

FOSTER_PLACEMENTS = ("U1", "U3", "U4", "U5", "U6")
"""Foster placements, whose carers may go on to adopt the child (placement A5)."""

FOSTERING_FOR_ADOPTION = "U5"
"""Carers approved as adopters as well as foster carers: they adopt the child they foster."""

PARENT_PLACEMENT_STATUSES = ("C1", "C2")
"""Legal statuses under which a child can be placed with parents (P1): the Placement of Children
with Parents regulations apply to children on a care order, and a child accommodated under
section 20 (V2) is not placed with parents (DfE rule 378)."""

EXIT_PLACEMENTS = {
    "E45": ("U1", "U3"),
    "E46": ("U4", "U6"),
    "E17": ("U1", "U3", "U4", "U6"),
}
"""Placements a period ending with each reason ends in: special guardianship to former foster
carers who are relatives or friends (E45) or not (E46), and staying put with foster carers at 18
(E17)."""

INITIAL_STATUS_AGE = 10
"""Age on starting care that splits ``care.initial_legal_status`` (under10, age10plus)."""

REASON_PLACE_CHANGE_FROM = np.datetime64("2016-04-01", "D")
"""REASON_PLACE_CHANGE is collected for changes of placement from the 2016 to 2017 SSDA903
collection (1 April 2016) on; earlier episodes leave it blank."""

OWN_PROVISION_IN_LA = ("residential", "semi_independent", "other")
"""Kinds of placement whose own provision (PR1) lies inside the LA (DfE rule 1015): the LA's own
homes and other own settings; its foster carers and relatives may live outside it."""


def _adoption_plan(periods, start, stop, params, rng) -> pd.DataFrame:
    """The adoption process of every period on the adoption route, with the stages it reached.

    A period that ended with an adoption order runs back from that order: placement for adoption,
    match, decision that the child should be placed, and the placement order between the decision
    and the match. A period still open at the census date, or cut short by death or emigration,
    gets a planned order date: the route's length drawn given the time it has already lasted. Its
    stages after its end (or the census date) are NaT.
    """
    idx = np.flatnonzero(periods["route"].to_numpy() == "adopted")
    n = len(idx)
    end = periods["end_date"].to_numpy("datetime64[D]")
    s, st = start[idx], stop[idx]
    done = np.isin(periods["reason_ended"].to_numpy(object)[idx], ADOPTED)
    mean, sigma = params["social_care.exit_duration_years"]["adopted"]
    spent = (st - s).astype(np.int64)
    draws = rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, (n, PLANNED_LENGTH_DRAWS))
    draws = (draws * DAYS).astype(np.int64)
    longer = draws > spent[:, None]
    stg = params["care.adoption_stages"]
    to_order = (rng.uniform(*stg["placed_to_order_years"], n) * DAYS).astype(np.int64)
    length = np.where(longer.any(axis=1), draws[np.arange(n), longer.argmax(axis=1)],
                      spent + to_order)  # fmt: skip
    order = np.where(done, st, s + length)
    placed = np.maximum(order - to_order, s + stg["earliest_placed_days"])
    placed = np.minimum(placed, order - 1)
    lo, hi = stg["match_to_placed_days"]
    matched = np.maximum(placed - rng.integers(lo, hi + 1, n), s + stg["earliest_matched_days"])
    matched = np.minimum(matched, placed)
    share = rng.uniform(*stg["decision_share_of_entry_to_match"], n)
    decision = s + ((matched - s).astype(np.int64) * share).astype(np.int64)
    decision = np.clip(decision, s + stg["earliest_decision_days"], matched - 1)
    share = rng.uniform(*stg["placement_order_share_of_decision_to_match"], n)
    placement_order = decision + ((matched - decision).astype(np.int64) * share).astype(np.int64)
    a = params["care.adopters"]
    sex = _pick_map(rng, a["sex"], n)
    couple = np.select([sex == "MF", np.isin(sex, ["MM", "FF"])], ["different_sex", "same_sex"],
                       "single")  # fmt: skip
    legal = np.empty(n, dtype=object)
    for kind, shares in a["legal_status"].items():
        m = couple == kind
        legal[m] = _pick_map(rng, shares, int(m.sum()))

    def reached(d):  # a stage after the period's end (or the census date) is not reached
        return np.where(d < st, d, NAT)

    ended_otherwise = ~np.isnat(end[idx]) & ~done
    return pd.DataFrame(
        {
            "row": idx,
            "ceased": np.where(ended_otherwise, st, NAT),
            "decision": reached(decision),
            "placement_order": reached(placement_order),
            "matched": reached(matched),
            "placed": reached(placed),
            "adopted": np.where(done, order, NAT),
            "carers_adopt": rng.random(n) < a["foster_carer_share"],
            "sex": sex,
            "legal_status": legal,
        }
    )


def _episodes(cohort, periods, row, start, stop, plan, geo, params, rng):
    """Care episodes, and whether each adoption-route period's adoptive placement is with the
    child's foster carers (placement A5; NA where the child is not placed for adoption)."""
    n = len(periods)
    end = periods["end_date"].to_numpy("datetime64[D]")
    dob = cohort.date_of_birth[row]
    uasc = periods["uasc"].to_numpy(bool)
    route = periods["route"].to_numpy()
    age0 = periods["age_at_start"].to_numpy()
    length = (stop - start).astype(np.int64)
    pid = periods["period_id"].to_numpy()

    # legal status timeline: start status, an optional emergency step, then the final order
    ls = params["care.initial_legal_status"]
    young = age0[:, None] < INITIAL_STATUS_AGE
    first_ls = _pick(rng, ls["codes"], np.where(young, ls["under10"], ls["age10plus"]))
    first_ls = np.where(uasc, "V2", np.where(route == "remand", "J1", first_ls))
    ev_pid, ev_date, ev_ls = [pid], [start], [first_ls]
    days = params["care.emergency_order_days"]
    lo = np.where(first_ls == "L1", days["L1"][0], days["L2"][0])
    hi = np.where(first_ls == "L1", days["L1"][1], days["L2"][1])
    emergency = np.isin(first_ls, ["L1", "L2"])
    interim = rng.random(n) < params["care.after_emergency_interim_order_share"]
    after_emergency = np.where(interim, "C1", "V2")
    after_emergency = np.where(route == "adopted", "C1", after_emergency)
    t1 = start + rng.integers(lo, hi + 1)
    ok = emergency & (t1 < stop)
    ev_pid.append(pid[ok]), ev_date.append(t1[ok]), ev_ls.append(after_emergency[ok])
    cur = np.where(ok, after_emergency, first_ls)
    y0, y1 = params["care.care_order_after_years"]
    t2 = np.where(ok, t1, start) + (rng.uniform(y0, y1, n) * DAYS).astype(np.int64)
    wants_order = np.isin(route, ["age18", "independent", "sgo", "cao", "other"]) & (cur == "C1")
    ok2 = wants_order & ~uasc & (t2 < stop)
    ev_pid.append(pid[ok2]), ev_date.append(t2[ok2]), ev_ls.append(np.full(ok2.sum(), "C2"))
    # adoption route: the placement order (E1), granted after the decision to place for adoption
    po = plan["placement_order"].to_numpy("datetime64[D]")
    has_po = ~np.isnat(po)
    ad_row = plan["row"].to_numpy()
    ev_pid.append(pid[ad_row[has_po]]), ev_date.append(po[has_po])
    ev_ls.append(np.full(has_po.sum(), "E1"))
    legal = pd.DataFrame(
        {
            "period_id": np.concatenate(ev_pid),
            "date": np.concatenate(ev_date).astype("datetime64[D]"),
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
    placed = plan["placed"].to_numpy("datetime64[D]")
    is_placed = ~np.isnat(placed)
    adopted = ad_row[is_placed]
    place_rows = np.r_[np.arange(n), mp, adopted]
    place_dates = np.r_[start, move_dates, placed[is_placed]]
    kind = np.r_[np.zeros(n, int), np.ones(len(mp), int), np.full(len(adopted), 2)]
    # drop moves on or after the day of an adoptive placement
    adopt_from = np.full(n, np.datetime64("2262-01-01", "D"))
    adopt_from[adopted] = placed[is_placed]
    keep = (kind != 1) | (place_dates < adopt_from[place_rows])
    place_rows, place_dates, kind = place_rows[keep], place_dates[keep], kind[keep]
    order = np.lexsort((kind, place_dates, place_rows))
    place_rows, place_dates, kind = place_rows[order], place_dates[order], kind[order]
    age_then = age_in_years(dob[place_rows], place_dates)
    sh = params["care.placement_shares"]
    table = np.array(
        [sh[b] for b in ("under1", "age1to4", "age5to9", "age10to15", "age16plus", "uasc")]
    )
    # UASC under 16 are placed as other children of their age (no semi-independent living)
    band = _band(age_then, uasc[place_rows] & (age_then >= 16))
    probs = table[band].copy()
    # placed with parents only under a care order, and never on the adoption route; where it is
    # allowed its chance is raised by the share of the age band's placements allowing it, so
    # that placements with parents keep their share of all placements
    ls_then = _status_on(legal, pid[place_rows], place_dates)
    parents_ok = np.isin(ls_then, PARENT_PLACEMENT_STATUSES) & (route[place_rows] != "adopted")
    allowed = np.bincount(band, weights=parents_ok, minlength=len(table))
    allowed = allowed / np.maximum(np.bincount(band, minlength=len(table)), 1)
    p1 = list(sh["codes"]).index("P1")
    probs[:, p1] = np.where(parents_ok, probs[:, p1] / np.maximum(allowed[band], 1e-9), 0.0)
    # a period that ends with the child's carers (special guardianship to former foster carers,
    # staying put at 18) ends in a foster placement with them (DfE rule 516)
    rec = periods["reason_ended"].to_numpy(object)
    last_place = np.r_[place_rows[1:] != place_rows[:-1], True] & (kind != 2)
    codes = np.asarray(sh["codes"])
    for reason, allowed_codes in EXIT_PLACEMENTS.items():
        m = last_place & (rec[place_rows] == reason)
        ok_code = np.isin(codes, allowed_codes)
        sub = np.where(ok_code, probs[m], 0.0)
        none = sub.sum(axis=1) == 0
        sub[none] = ok_code
        probs[m] = sub
    placement = _pick(rng, sh["codes"], probs)
    placement = np.where((placement == "U5") & (route[place_rows] != "adopted"), "U6", placement)
    # adoptive placements: with the current foster carers (A5: same home, same provider, a change
    # of placement status only) when they adopt, else with new adopters (A6)
    same_period = np.r_[False, place_rows[1:] == place_rows[:-1]]
    prev = np.r_[0, np.arange(len(placement) - 1)]
    fc_draw = np.zeros(n, bool)
    fc_draw[ad_row] = plan["carers_adopt"].to_numpy(bool)
    prev_code = placement[prev]
    with_carers = (kind == 2) & same_period & np.isin(prev_code, FOSTER_PLACEMENTS)
    with_carers &= (prev_code == FOSTERING_FOR_ADOPTION) | fc_draw[place_rows]
    new_adopters = (kind == 2) & ~with_carers
    placement = np.where(with_carers, "A5", np.where(new_adopters, "A6", placement))
    # placement postcode: inside the LA mostly, otherwise elsewhere in England
    la_idx = geo.index_of(periods["la_code"].to_numpy()[place_rows])
    p_inside = params["care.placement_in_la_share"]
    pl_la = np.where(rng.random(len(placement)) < p_inside, la_idx,
                     rng.integers(0, len(geo.la_code), len(placement)))  # fmt: skip
    inside = pl_la == la_idx
    provider = np.empty(len(placement), dtype=object)
    kinds = np.vectorize(PROVIDER_KIND.get, otypes=[object])(placement)
    for kname, shares in params["care.placement_provider"].items():
        m = kinds == kname
        if kname in OWN_PROVISION_IN_LA:
            provider[m] = _provider_by_location(rng, shares, inside[m], p_inside)
        else:
            provider[m] = _pick_map(rng, shares, int(m.sum()))
    pc_row = geo.sample_postcodes(rng, pl_la)
    home = cohort.postcode_at(row, np.maximum(start, dob))
    # a placement away from parents is not at the child's home (DfE rule 392d): a draw of the home
    # postcode takes the next postcode of the LA instead
    home_then = cohort.postcode_at(row[place_rows], np.maximum(place_dates, dob[place_rows]))
    first_pc, count = geo.la_first[pl_la], geo.la_count[pl_la]
    for _ in range(2):
        clash = (geo.postcode[pc_row] == home[place_rows]) | (geo.postcode[pc_row] == home_then)
        pc_row = np.where(clash, first_pc + (pc_row - first_pc + 1) % count, pc_row)
    pl_post = np.where(placement == "P1", home[place_rows], geo.postcode[pc_row]).astype(object)
    provider = np.where(with_carers, provider[prev], provider)
    pl_post = np.where(with_carers, pl_post[prev], pl_post)
    reasons = _pick_map(rng, params["care.placement_change_reasons"], len(placement))
    reasons = np.where(kind == 0, None, reasons).astype(object)
    reasons = np.where(with_carers, "PLACE", np.where(new_adopters, "CARPL", reasons))
    by_carers = pd.Series(pd.NA, index=pid[ad_row], dtype="boolean")
    by_carers.loc[pid[place_rows[kind == 2]]] = with_carers[kind == 2]
    places = pd.DataFrame(
        {
            "period_id": pid[place_rows],
            "date": place_dates,
            "placement": placement,
            "placement_provider": provider,
            "placement_postcode": pl_post,
            "reason_place_change": reasons,
            "_same_carer": with_carers,
        }
    )

    ev = pd.concat([legal.assign(_l=True), places.assign(_p=True)], ignore_index=True)
    ev = ev.groupby(["period_id", "date"], sort=True).first().reset_index()
    ev[["_l", "_p", "_same_carer"]] = ev[["_l", "_p", "_same_carer"]].fillna(False).astype(bool)
    cols = ["legal_status", "placement", "placement_provider", "placement_postcode"]
    ev[cols] = ev.groupby("period_id")[cols].ffill()
    first = ~ev["period_id"].duplicated()
    last = ~ev["period_id"].duplicated(keep="last")
    nxt = ev["date"].shift(-1)
    p_row = pd.Index(pid).get_indexer(ev["period_id"])
    p_end = end[p_row]
    ep_end = np.where(last, p_end, nxt.to_numpy("datetime64[D]"))
    # a new placement with the same carers is a change of placement only (T), or with a change of
    # legal status (U); with new carers P or B (DfE rule 217)
    same = ev["_same_carer"].to_numpy()
    rne = np.select(
        [first, same & ev["_l"], same, ev["_l"] & ev["_p"], ev["_l"]],
        ["S", "U", "T", "B", "L"],
        "P",
    )
    rec = np.where(last, periods["reason_ended"].to_numpy(object)[p_row], "X1")
    rec = np.where(last & np.isnat(p_end), None, rec)
    rpc = np.where(
        np.isin(rne, ["P", "B", "T", "U"])
        & (ev["date"].to_numpy("datetime64[D]") >= REASON_PLACE_CHANGE_FROM),
        ev["reason_place_change"].to_numpy(object),
        None,
    )
    episodes = pd.DataFrame(
        {
            "period_id": ev["period_id"].to_numpy(),
            "person_id": periods["person_id"].to_numpy()[p_row],
            "la_code": periods["la_code"].to_numpy()[p_row],
            "episode": ev.groupby("period_id").cumcount().to_numpy(np.int16) + 1,
            "start_date": ev["date"].to_numpy("datetime64[D]"),
            "end_date": ep_end,
            "reason_new_episode": rne,
            "legal_status": ev["legal_status"].to_numpy(object),
            "category_of_need": np.where(
                uasc, "N8", periods["primary_need"].fillna("N1").to_numpy(object)
            )[p_row],
            "placement": ev["placement"].to_numpy(object),
            "placement_provider": ev["placement_provider"].to_numpy(object),
            "placement_postcode": ev["placement_postcode"].to_numpy(object),
            "home_postcode": home[p_row],
            "reason_place_change": rpc,
            "reason_ended": rec,
        }
    )
    return episodes, by_carers


def _status_on(legal: pd.DataFrame, period_ids: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Legal status of each period on each date (the latest status change on or before it)."""
    when = np.asarray(dates, "datetime64[D]").astype("datetime64[ns]")
    query = pd.DataFrame({"i": np.arange(len(when)), "period_id": period_ids, "date": when})
    known = legal.assign(date=legal["date"].to_numpy("datetime64[ns]")).sort_values("date")
    out = pd.merge_asof(query.sort_values("date"), known, on="date", by="period_id")
    return out.sort_values("i")["legal_status"].to_numpy(object)


def _provider_by_location(rng, shares: dict, inside: np.ndarray, p_inside: float) -> np.ndarray:
    """Providers of placements whose own provision (PR1) must lie inside the LA.

    PR1 is drawn only for placements inside the LA, with its share scaled by the inside share so
    that over all placements each provider keeps its share (PR1 capped at every inside one).
    """
    codes = list(shares)
    if "PR1" not in codes or all(float(v) == 0 for c, v in shares.items() if c != "PR1"):
        return _pick_map(rng, shares, len(inside))  # nothing to trade own provision against
    p = np.array([float(v) for v in shares.values()])
    p = p / p.sum()
    own = codes.index("PR1")
    p_in = p.copy()
    p_in[own] = min(1.0, p[own] / p_inside)
    rest = np.arange(len(p)) != own
    p_in[rest] = p[rest] / p[rest].sum() * (1.0 - p_in[own])
    p_out = np.where(rest, p, 0.0) / p[rest].sum()
    probs = np.where(inside[:, None], p_in[None, :], p_out[None, :])
    return _pick(rng, codes, probs) if len(inside) else np.array([], dtype=object)


def _missing(periods, row, start, stop, cohort, params, rng):
    p = params["care.missing_episodes"]
    dob = cohort.date_of_birth[row]
    from10 = np.maximum(start, add_years(dob, params["care.missing_from_age"]))
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
    # a child missing when care ends would leave care for "any other reason" (E8, DfE rule 580):
    # in a period that ended otherwise, the child is back by the day before it ended
    ended = ~np.isnat(periods["end_date"].to_numpy("datetime64[D]"))
    back_by = np.where(ended & (periods["reason_ended"].to_numpy(object) != "E8"), stop - 1, stop)
    e = np.maximum(np.minimum(s + length, back_by[idx]), s)
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


def _adoptions(periods, plan: pd.DataFrame, by_carers: pd.Series) -> pd.DataFrame:
    """One row per adoption-route period whose decision to place for adoption was made.

    Periods that ended in adoption have every stage; a period still open at the census date (or
    ended by death or emigration) has the stages it reached, and its adopters only once matched.
    """
    p = plan[plan["decision"].notna()]
    idx = p["row"].to_numpy()
    pid = periods["period_id"].to_numpy()[idx]
    matched = p["matched"].notna().to_numpy()
    sex = p["sex"].to_numpy(object)
    out = pd.DataFrame(
        {
            "period_id": pid,
            "person_id": periods["person_id"].to_numpy()[idx],
            "la_code": periods["la_code"].to_numpy()[idx],
            "date_should_be_placed": p["decision"].to_numpy("datetime64[D]"),
            "date_matched": p["matched"].to_numpy("datetime64[D]"),
            "date_placed": p["placed"].to_numpy("datetime64[D]"),
            "date_adopted": p["adopted"].to_numpy("datetime64[D]"),
            "foster_carer": by_carers.reindex(pid).array,
            "number_of_adopters": pd.array(np.where(np.isin(sex, ["M1", "F1"]), 1, 2), "Int8"),
            "sex_of_adopters": np.where(matched, sex, None),
            "legal_status_of_adopters": np.where(matched, p["legal_status"].to_numpy(object), None),
        }
    )
    out.loc[~matched, "number_of_adopters"] = pd.NA
    # a child who leaves care otherwise than by adoption (dies or emigrates) is no longer to be
    # placed for adoption, for "any other reason"
    ceased = p["ceased"].to_numpy("datetime64[D]")
    out["date_decision_ceased"] = ceased
    out["reason_decision_ceased"] = np.where(np.isnat(ceased), None, DECISION_CEASED_OTHER)
    return out


CARE_LEAVER_AGES = (17, 21)
"""OC3 collects care leavers' circumstances around their 17th to 21st birthdays."""

ELIGIBLE_DAYS_SINCE_14 = 91
"""A relevant or former relevant child was looked after for at least 13 weeks (91 days) from
their 14th birthday, some of it after their 16th (Children Act 1989 s.23A and Sch. 2 para 19B;
the SSDA903 care leaver definition)."""

NOT_CARE_LEAVERS = ("E11", "E12", "E2", "E3", "E15")
"""Last reasons for leaving care after which there is no care leaver for the LA to record:
adopted, died in care (DfE rule 1000), care taken over by another LA (rule 1011; that LA is
responsible), found by an age assessment to be an adult."""

RETURNED_HOME = ("E4A", "E4B")
RETURNED_HOME_DAYS = 182
"""RHOM: the young person returned home to parents for six months or more."""


def _care_leavers(cohort, periods, row, start, stop, params, rng):
    """Care leavers' circumstances on their 17th to 21st birthdays, for the LA responsible.

    A care leaver is a relevant or former relevant child (13 weeks in care since 14, some after 16)
    whose last period of care ended, for a reason that leaves the LA responsible for them, by the
    birthday (on it, for those who leave care on their 18th birthday): a young person still looked
    after after the birthday, or not yet looked after, gets no row (DfE rules 1007, 1016). The LA
    is that of the last period. A birthday after a death is recorded once, as DIED; later
    birthdays, and those after emigration, are not observed.
    """
    end = periods["end_date"].to_numpy("datetime64[D]")
    rec = periods["reason_ended"].to_numpy(object)
    dob = cohort.date_of_birth[row]
    since14 = np.maximum((stop - np.maximum(start, add_years(dob, 14))).astype(np.int64), 0)
    days14 = pd.Series(since14).groupby(row).transform("sum").to_numpy()
    last = ~pd.Series(row).duplicated(keep="last").to_numpy()  # periods are in order of start
    eligible = (
        last
        & (days14 >= ELIGIBLE_DAYS_SINCE_14)
        & (stop >= add_years(dob, 16))
        & ~np.isnat(end)
        & ~np.isin(rec, NOT_CARE_LEAVERS)
    )
    e = np.flatnonzero(eligible)
    r = row[e]
    lo, hi = CARE_LEAVER_AGES
    ages = np.arange(lo, hi + 1)
    who = np.repeat(np.arange(len(e)), len(ages))
    age = np.tile(ages, len(e))
    bday = add_years(cohort.date_of_birth[r][who], age)
    death = cohort.date_of_death[r][who]
    died = ~np.isnat(death) & (death < bday)
    first_after_death = died & ~(add_years(bday, -1) > death)
    observed = bday <= cohort.follow_up_end[r][who]
    keep = (bday <= cohort.census_date) & (bday >= end[e][who]) & (observed | first_after_death)
    who, age, bday, died = who[keep], age[keep], bday[keep], died[keep]
    n = len(who)
    young = age <= 18
    # in touch: RHOM only for those who returned home to parents six months or more before
    it = params["care.care_leaver_in_touch"]
    in_touch = np.where(
        young, _pick_map(rng, it["age17to18"], n), _pick_map(rng, it["age19to21"], n)
    ).astype(object)
    home_since = (bday - end[e][who]).astype(np.int64)
    home = np.isin(rec[e][who], RETURNED_HOME) & (home_since >= RETURNED_HOME_DAYS)
    in_touch = np.where(home & (rng.random(n) < it["rhom_share_of_returned_home"]), "RHOM",
                        in_touch)  # fmt: skip
    in_touch = np.where(died, "DIED", in_touch)
    known = in_touch == "YES"  # activity and accommodation only for those in touch (344/345)
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
    types = np.asarray(acc["types"])
    probs = np.where(young[:, None], acc["age17to18"], acc["age19to21"]).astype(float)
    # staying put with former foster carers (Z) starts at 18 (rule 3001); a foyer (T) takes those
    # aged 18 at the start of the collection year, so not around the 17th or 18th birthday (347)
    probs[np.ix_(age == 17, types == "Z")] = 0.0
    probs[np.ix_(young, types == "T")] = 0.0
    letter = _pick(rng, types, probs)
    # no fixed abode (S) and custody (X) are never suitable (rule 133); other types are unsuitable
    # at the rate that makes the published unsuitable share of those in touch
    never = np.isin(types, ["S", "X"])
    share_sx = probs[:, never].sum(axis=1) / probs.sum(axis=1)
    target = np.where(young, acc["unsuitable_share"]["age17to18"],
                      acc["unsuitable_share"]["age19to21"])  # fmt: skip
    p_other = np.clip((target - share_sx) / (1.0 - share_sx), 0.0, 1.0)
    unsuitable = np.isin(letter, ["S", "X"]) | (rng.random(n) < p_other)
    accommodation = letter.astype(object) + np.where(unsuitable, "2", "1").astype(object)
    return pd.DataFrame(
        {
            "person_id": cohort.person_id[r][who],
            "la_code": periods["la_code"].to_numpy()[e][who],
            "age": age.astype(np.int8),
            "birthday": bday,
            "in_touch": in_touch,
            "activity": np.where(known, activity, "0"),
            "accommodation": np.where(known, accommodation, "0"),
        }
    )
