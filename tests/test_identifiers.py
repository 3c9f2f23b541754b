"""Identifiers: check characters against published examples, formats, uniqueness, determinism."""

from __future__ import annotations

import re

import numpy as np
import pytest

from trainkit.datasets import identifiers as ids

N = 200_000
SALT = 20240331

# DfE LA numbers (a spread of London, metropolitan, unitary and county LAs).
LA_CODES = np.array([201, 202, 213, 302, 330, 351, 380, 800, 821, 826, 845, 850, 886, 925, 938])

# The CIN census XSD (liia-tools CIN_schema_2024.xsd, ``upntype``) allows either pattern.
CIN_UPN_PATTERNS = (r"[A-Za-z]\d{12}", r"[A-Za-z]\d{11}[A-Za-z]")


@pytest.fixture(scope="module")
def people():
    """200,000 person_ids with an LA and a year of UPN allocation each."""
    rng = np.random.default_rng(7)
    person_ids = np.arange(1, N + 1, dtype=np.int64)
    return person_ids, rng.choice(LA_CODES, N), rng.integers(2000, 2024, N)


# --------------------------------------------------------------------------------------------
# The shared keyed permutation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 10, 99, 1000, 12_345, 2**16 + 1])
def test_keyed_permutation_is_a_permutation(size):
    out = ids.keyed_permutation(np.arange(size), size, salt=SALT, tag="test")
    assert out.dtype == np.uint64
    assert np.array_equal(np.sort(out), np.arange(size, dtype=np.uint64))


def test_keyed_permutation_with_tweaks_is_a_permutation_per_tweak():
    size = 5000
    values = np.tile(np.arange(size), 3)
    tweak = np.repeat([201, 886, 938], size)
    out = ids.keyed_permutation(values, size, salt=SALT, tag="test", tweak=tweak)
    for k in range(3):
        part = out[k * size : (k + 1) * size]
        assert np.array_equal(np.sort(part), np.arange(size, dtype=np.uint64))
    # each tweak selects a different permutation
    assert not np.array_equal(out[:size], out[size : 2 * size])


def test_keyed_permutation_depends_on_salt_and_tag_and_keeps_shape():
    x = np.arange(1000).reshape(10, 100)
    a = ids.keyed_permutation(x, 10**6, salt=1, tag="a")
    assert a.shape == (10, 100)
    assert np.array_equal(a, ids.keyed_permutation(x, 10**6, salt=1, tag="a"))
    assert (a != ids.keyed_permutation(x, 10**6, salt=2, tag="a")).mean() > 0.99
    assert (a != ids.keyed_permutation(x, 10**6, salt=1, tag="b")).mean() > 0.99


def test_keyed_permutation_full_64_bit_domain():
    x = np.array([0, 1, 2**63 - 1], dtype=np.int64)
    out = ids.keyed_permutation(x, 2**64, salt=SALT, tag="test")
    assert len(set(out.tolist())) == 3


def test_keyed_permutation_rejects_values_outside_domain():
    with pytest.raises(ValueError, match="below domain_size"):
        ids.keyed_permutation(np.array([0, 10]), 10, salt=1, tag="t")
    with pytest.raises(ValueError, match="at least 0"):
        ids.keyed_permutation(np.array([-1]), 10, salt=1, tag="t")
    with pytest.raises(ValueError, match="domain_size"):
        ids.keyed_permutation(np.array([0]), 0, salt=1, tag="t")
    with pytest.raises(TypeError, match="salt"):
        ids.keyed_permutation(np.array([0]), 10, salt="x", tag="t")


# --------------------------------------------------------------------------------------------
# UPN
# --------------------------------------------------------------------------------------------

# Valid UPNs published with their validators:
PUBLISHED_VALID_UPNS = [
    # python-stdnum, stdnum.gb.upn docstring: validate('B801200005001') passes.
    "B801200005001",
    # data-to-insight csc-validator-be-cin, cin2022_23/rule_1510.py test_validate:
    # "These should pass ... Valid format".
    "A950000178301",
    "H243278544154",
]
PUBLISHED_INVALID_UPNS = [
    # python-stdnum: validate('A801200005001') raises InvalidChecksum.
    "A801200005001",
    # csc-validator-be-cin rule_1510 test: "These should fail ... Wrong initial char".
    "R247962919251",
    "X428558133462",
    # School census error 1510 support pages (Arbor, Juniper): "an incorrect UPN".
    "B207000016049",
]


def test_upn_check_letter_matches_published_examples():
    bodies = [u[1:] for u in PUBLISHED_VALID_UPNS]
    assert ids.upn_check_letter(bodies).tolist() == [u[0] for u in PUBLISHED_VALID_UPNS]
    assert ids.is_valid_upn(PUBLISHED_VALID_UPNS).all()
    assert not ids.is_valid_upn(PUBLISHED_INVALID_UPNS).any()


def test_upn_check_letter_worked_example_by_hand():
    # The rule 1510 support pages work through 207000016049: (2x2)+(4x7)+(9x1)+(10x6)+(12x4)
    # +(13x9). That is 4+28+9+60+48+117 = 266 (the pages print 267), and 266 = 11*23 + 13,
    # so the check letter is the 14th of ABCDEFGHJKLMNPQRTUVWXYZ (index 13): P, as their own
    # table says (P=13). Their final answer, Q, follows from the misprinted 267.
    assert 4 + 28 + 9 + 60 + 48 + 117 == 266 and 266 % 23 == 13
    assert ids.upn_check_letter(["207000016049"]).tolist() == ["P"]
    assert ids.is_valid_upn(["P207000016049", "Q207000016049"]).tolist() == [True, False]


def test_temporary_upn_check_letter_by_hand():
    # Temporary UPN: the final letter counts as its index in ABCDEFGHJKLMNPQRTUVWXYZ
    # (govtalk "Unique Pupil Number" v2.0, validation 6).
    # 80120000500A: 8x2 + 1x4 + 2x5 + 5x10 + 0 (A) x13 = 80; 80 mod 23 = 11 -> M.
    # 80120000599Z: 80 + 9x11 + 9x12 + 22 (Z) x13 = 573; 573 mod 23 = 21 -> Y.
    assert ids.upn_check_letter(["80120000500A", "80120000599Z"]).tolist() == ["M", "Y"]
    made = ids.make_temporary_upns([801, 801], [2000, 2000], [2005, 2005], [0, 99 * 23 + 22])
    assert made.tolist() == ["M80120000500A", "Y80120000599Z"]
    assert ids.is_valid_upn(made).all()


def test_upn_check_letter_rejects_malformed_bodies():
    for bad in ["20700001604", "2070000160499", "20700001604I", "2O7000016049"]:
        with pytest.raises(ValueError, match="upn_check_letter"):
            ids.upn_check_letter([bad])


def test_make_upns_layout():
    # LLL EEEE YY SSS after the check letter (govtalk UPN v2.0 "Values").
    upn = ids.make_upns([886], [2614], [2011], [42])[0]
    assert upn[1:] == "886" + "2614" + "11" + "042"
    with pytest.raises(ValueError, match="serials"):
        ids.make_upns([886], [2614], [2011], [1000])
    with pytest.raises(ValueError, match="la_codes"):
        ids.make_upns([1886], [2614], [2011], [1])


def test_assigned_upns_are_valid_unique_and_match_the_patterns(people):
    person_ids, las, years = people
    upns = ids.assign_upns(person_ids, las, years, salt=SALT)
    assert upns.shape == (N,)
    assert ids.is_valid_upn(upns).all()
    assert len(np.unique(upns)) == N
    rule_168 = re.compile(ids.UPN_PATTERN)
    cin = [re.compile(p) for p in CIN_UPN_PATTERNS]
    sample = upns[:: N // 2000]
    assert all(rule_168.fullmatch(u) for u in sample)
    assert all(any(p.fullmatch(u) for p in cin) for u in sample)
    # the LA and year of allocation are where the DfE puts them
    assert all(u[1:4] == f"{la:03d}" for u, la in zip(upns[:500], las[:500], strict=True))
    assert all(u[8:10] == f"{y % 100:02d}" for u, y in zip(upns[:500], years[:500], strict=True))
    estab = np.array([int(u[4:8]) for u in upns[:2000]])
    assert estab.min() >= 2000 and estab.max() <= 5999


def test_temporary_upns_are_valid_and_match_the_patterns():
    rng = np.random.default_rng(3)
    n = 5000
    upns = ids.make_temporary_upns(
        rng.choice(LA_CODES, n),
        rng.integers(2000, 6000, n),
        rng.integers(2000, 2024, n),
        rng.integers(0, 2300, n),
    )
    assert ids.is_valid_upn(upns).all()
    rule_168 = re.compile(ids.UPN_PATTERN)
    assert all(rule_168.fullmatch(u) and u[-1] not in "IOS" for u in upns)


def test_every_single_character_change_breaks_the_check_letter(people):
    # Weights 2..13 and a digit change of 1..9 never multiply to a multiple of the prime 23,
    # so every one-digit substitution (and every change of the check letter) is caught.
    person_ids, las, years = people
    upns = ids.assign_upns(person_ids[:3000], las[:3000], years[:3000], salt=SALT)
    rng = np.random.default_rng(11)
    changed = []
    for u in upns:
        pos = int(rng.integers(0, 13))
        if pos == 0:
            new = rng.choice([c for c in ids.UPN_LETTERS if c != u[0]])
        else:
            new = rng.choice([d for d in "0123456789" if d != u[pos]])
        changed.append(u[:pos] + str(new) + u[pos + 1 :])
    assert not ids.is_valid_upn(changed).any()


def test_adjacent_transpositions_are_caught(people):
    person_ids, las, years = people
    upns = ids.assign_upns(person_ids[:2000], las[:2000], years[:2000], salt=SALT)
    swapped = [u[:5] + u[6] + u[5] + u[7:] for u in upns if u[5] != u[6]]
    assert swapped and not ids.is_valid_upn(swapped).any()


def test_is_valid_upn_rejects_junk_and_unknown_codes():
    junk = ["UN1", "UN5", "", None, np.nan, "b801200005001", "I801200005001", "B80120000500"]
    assert not ids.is_valid_upn(np.array(junk, dtype=object)).any()
    assert ids.is_valid_upn("B801200005001").shape == ()


def test_upn_unknown_codes():
    assert list(ids.UPN_UNKNOWN_CODES) == [f"UN{i}" for i in range(1, 8)]
    assert ids.UPN_UNKNOWN_CODES_903 == ("UN1", "UN2", "UN3", "UN4", "UN5")  # 903 rule 168
    assert ids.UPN_UNKNOWN_CODES_CIN == tuple(f"UN{i}" for i in range(1, 8))  # CIN XSD
    assert "under 6" in ids.UPN_UNKNOWN_CODES["UN1"]
    assert "no further action" in ids.UPN_UNKNOWN_CODES["UN7"]


def test_upn_capacity_error():
    with pytest.raises(ValueError, match="UPN_CAPACITY"):
        ids.assign_upns([ids.UPN_CAPACITY + 1], [886], [2015], salt=SALT)
    with pytest.raises(ValueError, match="positive"):
        ids.assign_upns([0], [886], [2015], salt=SALT)


# --------------------------------------------------------------------------------------------
# NHS numbers
# --------------------------------------------------------------------------------------------


def test_nhs_check_digit_by_hand():
    # 943 476 5919, the NHS Data Dictionary's example (quoted by the nhs-number crate docs):
    # 9x10 + 4x9 + 3x8 + 4x7 + 7x6 + 6x5 + 5x4 + 9x3 + 1x2 = 299; 299 mod 11 = 2; 11 - 2 = 9.
    assert 90 + 36 + 24 + 28 + 42 + 30 + 20 + 27 + 2 == 299
    assert ids.nhs_check_digit(["943476591", 943476591]).tolist() == [9, 9]
    # 999 123 456: sum 320, 320 mod 11 = 1, 11 - 1 = 10: no valid check digit (-1). So
    # '999 123 4560', shown as an example in the nhs-number crate 0.3 docs, is not valid.
    assert ids.nhs_check_digit([999123456]).tolist() == [-1]
    with pytest.raises(ValueError, match="nine-digit"):
        ids.nhs_check_digit(["94347659"])


def test_known_nhs_numbers():
    valid = [
        "9434765919",  # NHS Data Dictionary example
        "943 476 5919",  # the same, in display form
        "6716689966",  # nhs-validation (npm) README: validate('671 668 9966') is true
        9434765919,
    ]
    invalid = ["9434765918", "9991234560", "0000000001", "943476591", "94347659190", "ABC"]
    assert ids.is_valid_nhs_number(valid).all()
    assert not ids.is_valid_nhs_number(invalid).any()


def test_nhs_test_capacity_constant_is_right():
    # Independent count: every stem 999000000-999999999 whose check is not 10.
    stems = np.arange(999_000_000, 1_000_000_000)
    digits = np.array([(stems // 10**p) % 10 for p in range(8, -1, -1)]).T
    remainder = (digits * np.arange(10, 1, -1)).sum(axis=1) % 11
    assert (remainder != 1).sum() == ids.NHS_TEST_CAPACITY == 909_091


def test_assigned_nhs_numbers_are_valid_unique_and_in_the_test_range(people):
    person_ids, _, _ = people
    numbers = ids.assign_nhs_numbers(person_ids, salt=SALT)
    assert numbers.dtype == np.dtype("<U10")
    assert ids.is_valid_nhs_number(numbers).all()
    assert np.char.startswith(numbers, "999").all()
    assert len(np.unique(numbers)) == N


def test_nhs_numbers_fill_the_whole_test_range_exactly_once():
    # person_ids 1..capacity take every valid number of 999 000 0000 - 999 999 9999 once
    numbers = ids.assign_nhs_numbers(np.arange(1, ids.NHS_TEST_CAPACITY + 1), salt=SALT)
    ints = np.sort(numbers.astype(np.int64))
    assert np.all(np.diff(ints) > 0)
    assert ints[0] >= ids.NHS_TEST_FIRST and ints[-1] <= ids.NHS_TEST_LAST
    assert ids.is_valid_nhs_number(ints).all()


def test_nhs_capacity_error_names_the_limit():
    with pytest.raises(ValueError, match=r"NHS_TEST_CAPACITY.*909,091"):
        ids.assign_nhs_numbers([1, ids.NHS_TEST_CAPACITY + 1], salt=SALT)


def test_max_people_leaves_one_spare_number_per_hundred_people():
    assert ids.MAX_PEOPLE == 900_090
    spare = ids.NHS_TEST_CAPACITY - ids.MAX_PEOPLE
    assert spare * ids.NHS_REISSUE_RESERVE >= ids.MAX_PEOPLE
    # every person of the largest run gets LA child ids in both identities
    assert ids.MAX_PEOPLE <= ids.LA_CHILD_ID_CAPACITY


@pytest.mark.parametrize("population", [2_400, 250_000, ids.MAX_PEOPLE])
def test_new_nhs_numbers_never_repeat_any_number_whatever_the_shards(population):
    shard = 800
    starts = np.arange(1, population + 1, shard)
    rng = np.random.default_rng(3)
    first = set(ids.assign_nhs_numbers(np.arange(1, population + 1), salt=SALT))
    new = []
    for lo in starts[:40]:  # forty shards, each re-registering as many as its block holds
        hi = min(lo + shard - 1, population)
        k = max(1, (hi - lo + 1) // ids.NHS_REISSUE_RESERVE)
        people = rng.choice(np.arange(lo, hi + 1), size=k, replace=False)
        numbers = ids.assign_new_nhs_numbers(people, (lo, hi), population, salt=SALT)
        assert ids.is_valid_nhs_number(numbers).all()
        again = ids.assign_new_nhs_numbers(people[::-1], (lo, hi), population, salt=SALT)[::-1]
        assert np.array_equal(numbers, again)  # a person's number does not depend on the order
        new.extend(numbers)
    assert len(set(new)) == len(new)
    assert not set(new) & first


def test_new_nhs_numbers_too_many_for_the_block_is_a_clear_error():
    n = ids.MAX_PEOPLE
    with pytest.raises(ValueError, match="simulate fewer people"):
        ids.assign_new_nhs_numbers(np.arange(1, 101), (1, 800), n, salt=SALT)
    with pytest.raises(ValueError, match="between 1 and 800"):
        ids.assign_new_nhs_numbers([900], (1, 800), 2_400, salt=SALT)


def test_format_nhs_number():
    assert ids.format_nhs_number(["9434765919", 9991125817]).tolist() == [
        "943 476 5919",
        "999 112 5817",
    ]
    with pytest.raises(ValueError, match="10 digits"):
        ids.format_nhs_number(["94347659"])


# --------------------------------------------------------------------------------------------
# LA child ids
# --------------------------------------------------------------------------------------------

STYLE_PATTERNS = {
    "numeric": r"[1-9]\d{5,7}",
    "padded": r"\d{9}",
    "prefixed": r"[A-Z]{2}\d{7}",
    "la": r"LA\d{8}",
}


def test_la_child_ids_are_unique_within_each_la_and_fit_the_specs(people):
    person_ids, las, _ = people
    child = ids.la_child_ids(person_ids, las, salt=SALT)
    assert child.shape == (N,)
    # unique within an LA (and so unique as (LA, CHILD) pairs)
    pairs = np.char.add(las.astype(str), np.char.add("|", child))
    assert len(np.unique(pairs)) == N
    # SSDA903 CHILD is "alphanumeric" (liia-tools schema) and at most 10 characters;
    # CIN LAchildID is a nonEmptyString.
    lengths = np.char.str_len(child)
    assert lengths.min() >= 1 and lengths.max() <= ids.LA_CHILD_ID_MAX_LENGTH
    assert all(c.isascii() and c.isalnum() for c in child[:: N // 5000])
    # every LA writes all its ids in its one style
    styles = ids.la_child_id_styles(las)
    for name, pattern in STYLE_PATTERNS.items():
        rx = re.compile(pattern)
        mine = child[styles == name]
        assert mine.size and all(rx.fullmatch(c) for c in mine[:2000])


def test_every_style_is_used_across_england():
    all_las = np.array(
        [201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 301, 302, 303, 304]
        + list(range(800, 940, 3))
    )
    styles = ids.la_child_id_styles(all_las)
    assert set(styles.tolist()) == set(ids.LA_CHILD_ID_STYLES)
    # a style belongs to the LA: it does not change with the run's salt
    one = ids.la_child_ids([5, 6], [886, 886], salt=1)
    two = ids.la_child_ids([5, 6], [886, 886], salt=2)
    style = str(ids.la_child_id_styles([886])[0])
    assert re.fullmatch(STYLE_PATTERNS[style], one[0])
    assert re.fullmatch(STYLE_PATTERNS[style], two[0])
    assert one[0] != two[0]


def test_a_child_who_moves_la_gets_a_new_id():
    person_ids = np.arange(1, 2001)
    here = ids.la_child_ids(person_ids, 886, salt=SALT)
    there = ids.la_child_ids(person_ids, 202, salt=SALT)
    assert (here != there).all()
    assert np.array_equal(here, ids.la_child_ids(person_ids, 886, salt=SALT))


def test_la_child_id_capacity_error():
    with pytest.raises(ValueError, match="LA_CHILD_ID_CAPACITY"):
        ids.la_child_ids([ids.LA_CHILD_ID_CAPACITY + 1], [886], salt=SALT)
    with pytest.raises(ValueError, match="generation"):
        ids.la_child_ids([5], [886], salt=SALT, generation=2)


def test_an_adopted_child_gets_a_new_id_unlike_every_other_childs(people):
    """The adoptive identity's id (generation 1) is new in the LA: it differs from every birth
    identity's id there, and the birth ids are those of a run without adoptions."""
    person_ids, las, _ = people
    birth = ids.la_child_ids(person_ids, las, salt=SALT)
    assert np.array_equal(birth, ids.la_child_ids(person_ids, las, salt=SALT, generation=0))
    adoptive = ids.la_child_ids(person_ids, las, salt=SALT, generation=1)
    pairs = np.char.add(np.r_[las, las].astype(str), np.char.add("|", np.r_[birth, adoptive]))
    assert len(np.unique(pairs)) == 2 * N
    styles = ids.la_child_id_styles(las)
    for name, pattern in STYLE_PATTERNS.items():
        mine = adoptive[styles == name]
        assert all(re.fullmatch(pattern, c) for c in mine[:2000])
    # the largest person_id, in both identities, still fits every style
    top = ids.la_child_ids([ids.LA_CHILD_ID_CAPACITY] * 2, [886, 202], salt=SALT, generation=1)
    assert all(len(c) <= ids.LA_CHILD_ID_MAX_LENGTH for c in top)
    keys = ids.person_la_keys([12, 12], [886, 886], generation=[0, 1])
    assert keys[0] != keys[1] and keys[0] == ids.person_la_keys(12, 886)


# --------------------------------------------------------------------------------------------
# Research identifiers
# --------------------------------------------------------------------------------------------


def test_pmrs(people):
    person_ids, _, _ = people
    p = ids.pmrs(person_ids, salt=SALT)
    assert p.dtype == np.dtype(f"<U{ids.PMR_LENGTH}")
    assert len(np.unique(p)) == N
    assert all(re.fullmatch(r"[0-9A-F]{18}", x) for x in p[:: N // 2000])


def test_token_person_ids(people):
    person_ids, _, _ = people
    t = ids.token_person_ids(person_ids, salt=SALT)
    assert len(np.unique(t)) == N
    assert all(re.fullmatch(r"0000[0-9A-Z]{11}", x) for x in t[:: N // 2000])


def test_epikeys():
    keys = np.arange(N, dtype=np.int64) * 7 + 3
    e = ids.epikeys(keys, salt=SALT)
    assert len(np.unique(e)) == N
    assert all(re.fullmatch(r"[1-9]\d{11}", x) for x in e[:: N // 2000])
    with pytest.raises(ValueError, match="keys"):
        ids.epikeys([ids.EPIKEY_CAPACITY], salt=SALT)


def test_anon_ids(people):
    person_ids, las, _ = people
    keys = ids.person_la_keys(person_ids, las)
    a = ids.anon_ids(keys, salt=SALT, prefix="CLA")
    assert len(np.unique(a)) == N
    assert all(re.fullmatch(r"CLA[0-9A-F]{16}", x) for x in a[:: N // 2000])
    # another module's anonymised id for the same child is unrelated
    b = ids.anon_ids(keys, salt=SALT, prefix="CIN")
    assert (np.char.replace(a, "CLA", "") != np.char.replace(b, "CIN", "")).all()
    with pytest.raises(ValueError, match="prefix"):
        ids.anon_ids(keys[:1], salt=SALT, prefix="C-1")


# --------------------------------------------------------------------------------------------
# Properties every identifier shares
# --------------------------------------------------------------------------------------------

MAKERS = {
    "upn": lambda p, la, y, s: ids.assign_upns(p, la, y, salt=s),
    "nhs": lambda p, la, y, s: ids.assign_nhs_numbers(p, salt=s),
    "la_child_id": lambda p, la, y, s: ids.la_child_ids(p, la, salt=s),
    "pmr": lambda p, la, y, s: ids.pmrs(p, salt=s),
    "token_person_id": lambda p, la, y, s: ids.token_person_ids(p, salt=s),
    "epikey": lambda p, la, y, s: ids.epikeys(p, salt=s),
    "anon_id": lambda p, la, y, s: ids.anon_ids(ids.person_la_keys(p, la), salt=s),
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_same_inputs_same_outputs_whatever_the_shards(kind, people):
    person_ids, las, years = (a[:20_000] for a in people)
    make = MAKERS[kind]
    whole = make(person_ids, las, years, SALT)
    assert np.array_equal(whole, make(person_ids, las, years, SALT))
    # split into uneven shards and shuffled: each person still gets the same identifier
    order = np.random.default_rng(5).permutation(person_ids.size)
    cuts = [0, 1, 777, 5000, 13_001, order.size]
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        rows = order[lo:hi]
        assert np.array_equal(make(person_ids[rows], las[rows], years[rows], SALT), whole[rows])


@pytest.mark.parametrize("kind", list(MAKERS))
def test_a_different_salt_gives_different_identifiers(kind, people):
    person_ids, las, years = (a[:20_000] for a in people)
    make = MAKERS[kind]
    same = make(person_ids, las, years, SALT) == make(person_ids, las, years, SALT + 1)
    assert same.mean() < 0.01


@pytest.mark.parametrize("kind", ["nhs", "pmr", "token_person_id", "epikey", "anon_id"])
def test_identifiers_do_not_reveal_person_order(kind, people):
    person_ids, las, years = (a[:50_000] for a in people)
    out = MAKERS[kind](person_ids, las, years, SALT)
    rank = np.argsort(np.argsort(out)).astype(float)
    r = np.corrcoef(rank, np.arange(rank.size, dtype=float))[0, 1]
    assert abs(r) < 0.02
    # neighbours in person_id are not neighbours in identifier order
    assert np.median(np.abs(np.diff(rank))) > rank.size / 10
