"""The simulated people: who, where, when; families and address histories."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from trainkit import reference
from trainkit.simulate.geography import ETHNICITY_CODES

POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$")


def test_persons_basic(truth):
    p = truth("persons")
    assert len(p) == 6000 and p.person_id.is_unique
    births = p[~p.uasc]
    assert births.date_of_birth.between("1998-04-01", "2024-03-31").all()
    assert births.date_arrived.isna().all() and births.birth_la_code.notna().all()
    assert set(p.ethnicity) <= set(ETHNICITY_CODES)
    assert 0.48 < (births.sex == "M").mean() < 0.54
    assert (p.forename.str.len() > 1).all() and (p.surname.str.len() > 1).all()
    assert (p.follow_up_end <= pd.Timestamp("2024-03-31")).all()
    died = p.date_of_death.notna()
    assert (p.follow_up_end[died] == p.date_of_death[died]).all()
    assert (p.date_of_death[died] >= p.date_of_birth[died]).all()


def test_uasc_arrive_as_older_boys_with_no_birth_record(truth):
    p = truth("persons")
    u = p[p.uasc]
    assert 5 <= len(u) <= 60  # about 0.3% of people
    assert u.birth_la_code.isna().all() and u.mother_id.isna().all()
    age = (u.date_arrived - u.date_of_birth).dt.days / 365.25
    assert age.between(10, 18.1).all() and age.mean() > 14.5
    assert (u.sex == "M").mean() > 0.8


def test_siblings_share_household(truth):
    p = truth("persons")
    births = p[~p.uasc]
    fam = births.groupby("family_id")
    assert (fam.mother_id.nunique() == 1).all()
    assert (fam.ethnicity.nunique() == 1).all()
    sizes = fam.size()
    assert 1.3 < sizes.mean() < 2.2 and sizes.max() <= 5
    multi = births[births.family_id.isin(sizes[sizes > 1].index)]
    same_surname = multi.groupby("family_id").surname.nunique().eq(1).mean()
    assert 0.7 < same_surname < 0.99  # most siblings share a surname, some half-siblings do not
    # family adversity is shared by siblings
    assert (fam.family_adversity.nunique() == 1).all()


def test_addresses_are_real_postcodes_in_the_right_la(truth):
    a = truth("addresses")
    p = truth("persons")
    assert a.postcode.str.match(POSTCODE).all()
    pcs = reference.postcodes().set_index("postcode")
    assert (pcs.loc[a.postcode, "la_code"].to_numpy() == a.la_code.to_numpy()).all()
    assert set(a.person_id) == set(p.person_id)
    first = a[a.spell == 0].set_index("person_id")
    start = p.set_index("person_id").date_arrived.fillna(p.set_index("person_id").date_of_birth)
    assert (first.start_date == start.loc[first.index]).all()
    # spells are contiguous: each starts the day after the previous ends
    a = a.sort_values(["person_id", "spell"])
    nxt = a.groupby("person_id").start_date.shift(-1)
    has_next = nxt.notna()
    assert ((a.end_date[has_next] + pd.Timedelta(days=1)) == nxt[has_next]).all()
    movers = a.groupby("person_id").size().gt(1).mean()
    assert 0.2 < movers < 0.8
    cross_la = a.groupby("person_id").la_code.nunique().gt(1).mean()
    assert 0.05 < cross_la < movers


def test_deprivation_goes_with_adversity_and_las_differ(truth):
    p = truth("persons")
    births = p[~p.uasc]
    r = np.corrcoef(births.deprivation_decile, births.family_adversity)[0, 1]
    assert r < -0.2  # decile 1 is most deprived, adversity high is worse
    la = truth("addresses").query("spell == 0").groupby("la_code").deprivation_decile.mean()
    assert la.max() - la.min() > 3
