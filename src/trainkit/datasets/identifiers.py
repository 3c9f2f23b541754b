"""Identifiers as each agency issues them: UPNs, NHS numbers, LA child ids, PMRs, HES keys.

Every identifier is a deterministic function of the simulated person (or record) and a salt,
computed a whole column at a time with numpy. Wherever an identifier must be unique, the
mapping goes through one shared helper, :func:`keyed_permutation`: a keyed Feistel network over
a mixed-radix domain, with cycle-walking down to the exact domain size. So

- distinct inputs always give distinct outputs (a bijection, not a hash that rarely collides);
- the same person and salt give the same identifier in whatever shard the person falls;
- identifiers do not reveal the order of ``person_id``.

Formats and their sources:

- **UPN** (DfE Unique Pupil Number), 13 characters: check letter, then LA number (3 digits),
  establishment number (4), last two digits of the year of allocation (2) and a serial (3);
  a temporary UPN has a 2-digit serial and a final letter. The check letter is the sum of the
  characters at positions 2-13 times their position, modulo 23, read in ``UPN_LETTERS``
  (A-Z without I, O and S); a temporary UPN's final letter counts as its index in the same
  list. Sources: UK Government Data Standards Catalogue, "Unique Pupil Number" v2.0 (govtalk,
  2004); DfE school census validation rule 1510 (as quoted by Arbor and Juniper support pages,
  whose worked example slips: its sum is 266, not 267, so the letter is P, not Q);
  python-stdnum ``stdnum.gb.upn``; SSDA903 rule 168 for the pattern.
- **UPN unknown codes** UN1-UN7: DfE Common Basic Data Set code set CS051 (wording as in
  public CBDS code-set transcriptions). The SSDA903 return accepts UN1-UN5 (rule 168), the CIN
  census UN1-UN7 (``unknownupntype`` in the CIN XSD).
- **NHS number**: 10 digits, modulus 11 check digit on the first nine (weights 10..2), from the
  range 999 000 0000 - 999 999 9999 that is valid but never issued (NHS Data Dictionary, as
  quoted by the ``nhs-number`` crate documentation; worked example 943 476 5919).
- **LA child id** (SSDA903 CHILD, CIN LAchildID): alphanumeric (903 schema), at most 10
  characters; each LA has its own style (see ``LA_CHILD_ID_STYLES``).
- **PMR** (anonymised Pupil Matching Reference): 18 upper-case hexadecimal characters, the
  ``char(18)`` that FFT Education Datalab's NPD scripts store it in. (UCL's ECHILD_Synthetic
  uses "CCF" + 16 hex characters.)
- **HES Token Person ID**: "0000" + 11 characters from 0-9A-Z, as in UCL's ECHILD_Synthetic
  ``R/1_main.R``. **EPIKEY**: 12 digits.

Example:
    >>> import numpy as np
    >>> ids = np.array([1, 2, 3])
    >>> upns = assign_upns(ids, np.array([886, 886, 202]), np.array([2015, 2015, 2016]), salt=7)
    >>> bool(is_valid_upn(upns).all())
    True
    >>> nhs = assign_nhs_numbers(ids, salt=7)
    >>> bool(is_valid_nhs_number(nhs).all()), [n[:3] for n in nhs]
    (True, ['999', '999', '999'])
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
"""Check-letter alphabet: 0 -> A, ..., 22 -> Z (I, O and S are never used)."""

UPN_PATTERN = r"^((?![IOS])[A-Z])(\d{12}|\d{11}[A-Z])$"
"""The pattern SSDA903 validation rule 168 requires of a UPN (besides the UNn codes)."""

UPN_UNKNOWN_CODES: dict[str, str] = {
    "UN1": "Child is aged under 6 years old and is not yet assigned a UPN",
    "UN2": "Child has never attended a maintained school in England and has not been "
    "assigned a UPN",
    "UN3": "Child is educated outside England and has not been assigned a UPN",
    "UN4": "Child is newly in need (one week before end of collection period) and the UPN was "
    "not yet known at the time of the CIN census annual statistical return",
    "UN5": "Sources collating UPNs reflect discrepancy/ies for the child's name and/or surname "
    "and/or date of birth therefore preventing reliable matching (e.g. duplicated UPN)",
    "UN6": "Child is not looked after, and the authority is unable to obtain the UPN",
    "UN7": "Child referred but no further action taken",
}
"""Reasons a UPN is missing, in the words of DfE CBDS code set CS051. In the SSDA903 return UN4
is used for a child newly looked after (903 rule 210: not for a child looked after for more
than a week at 31 March)."""

UPN_UNKNOWN_CODES_903: tuple[str, ...] = ("UN1", "UN2", "UN3", "UN4", "UN5")
"""The codes SSDA903 accepts in the UPN field (rule 168)."""

UPN_UNKNOWN_CODES_CIN: tuple[str, ...] = tuple(UPN_UNKNOWN_CODES)
"""The codes the CIN census accepts in UPNunknown (UN1-UN7)."""

UPN_FIRST_ESTABLISHMENT = 2000
"""Lowest establishment number :func:`assign_upns` issues from (2xxx-5xxx: primary and
secondary schools; 6xxx are independent schools, which do not allocate UPNs)."""

UPN_CAPACITY = 4_000_000
"""person_ids 1..UPN_CAPACITY get distinct UPNs from :func:`assign_upns` (establishment numbers
2000-5999 times serials 000-999, within each LA and year of allocation)."""

NHS_TEST_FIRST = 999_000_0000
NHS_TEST_LAST = 999_999_9999
NHS_TEST_CAPACITY = 909_091
"""How many valid NHS numbers the never-issued test range 999 000 0000 - 999 999 9999 holds:
of its 10**6 nine-digit stems, those whose modulus-11 check is not 10."""

NHS_REISSUE_RESERVE = 100
"""A run keeps at least one test-range NHS number in ``NHS_REISSUE_RESERVE + 1`` spare for the
new numbers issued after adoption (:func:`assign_new_nhs_numbers`): room for one person in 100 of
every shard to be re-registered (about 0.4% of children are adopted)."""

MAX_PEOPLE = NHS_TEST_CAPACITY * NHS_REISSUE_RESERVE // (NHS_REISSUE_RESERVE + 1)
"""People one run can simulate (900,090): each gets an NHS number of the test range, and the
numbers left over (at least one per ``NHS_REISSUE_RESERVE`` people) are kept for the new NHS
numbers of adopted children."""

LA_CHILD_ID_MAX_LENGTH = 10
LA_CHILD_ID_CAPACITY = 5_000_000
"""person_ids 1..LA_CHILD_ID_CAPACITY get distinct child ids within every LA, in each of the
``LA_CHILD_ID_GENERATIONS`` identities a child can have (the smallest style, two letters and 7
digits, holds 10**7 = LA_CHILD_ID_CAPACITY * LA_CHILD_ID_GENERATIONS)."""

LA_CHILD_ID_GENERATIONS = 2
"""Identities a child can have in one LA's records: the birth identity (0) and, from an adoption
order, the adoptive one (1). An adopted child who is looked after or in need again is a new child
to the LA, with a new id (SSDA903 rules 199/334/1003 expect it; see :func:`la_child_ids`)."""

LA_CHILD_ID_STYLES: dict[str, str] = {
    "numeric": "6 to 8 digits without leading zeros, e.g. 4817263",
    "padded": "9 digits with leading zeros, e.g. 004817263",
    "prefixed": "two letters then 7 digits, e.g. CH4817263",
    "la": "'LA' then 8 digits, e.g. LA04817263",
}
"""Child-id styles; each LA uses one, chosen from its LA number (see
:func:`la_child_id_styles`)."""

LA_CHILD_ID_PREFIXES: tuple[str, ...] = ("CH", "CS", "SC", "CY", "CF", "CP")

PMR_LENGTH = 18
TOKEN_PERSON_ID_PREFIX = "0000"
TOKEN_PERSON_ID_CAPACITY = 36**11
EPIKEY_CAPACITY = 9 * 10**11
"""EPIKEYs are 12-digit numbers without a leading zero: keys 0..EPIKEY_CAPACITY-1."""

_TWO64 = 1 << 64
_ROUNDS = 8
_UPN_CODES = np.frombuffer(UPN_LETTERS.encode(), dtype=np.uint8).astype(np.uint32)
_UPN_WEIGHTS = np.arange(2, 14, dtype=np.int64)
_NHS_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)

# Value of an ASCII code point as a UPN letter (0-22), or -1 (I, O, S, and non-letters).
_LETTER_VALUE = np.full(128, -1, dtype=np.int64)
_LETTER_VALUE[np.frombuffer(UPN_LETTERS.encode(), dtype=np.uint8)] = np.arange(23)

# --------------------------------------------------------------------------------------------
# The keyed permutation shared by every identifier
# --------------------------------------------------------------------------------------------


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 step and finaliser (Steele, Lea & Flood 2014), elementwise on uint64."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        return x


def _seed(salt: int, tag: str) -> int:
    """A 64-bit key for one (salt, purpose) pair; different tags give unrelated keys."""
    if isinstance(salt, bool) or not isinstance(salt, int | np.integer):
        raise TypeError(f"salt must be a whole number, got {salt!r}")
    text = f"trainkit.identifiers|{tag}|{int(salt)}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _round_keys(salt: int, tag: str, tweak: np.ndarray | None) -> list[np.ndarray]:
    """Round keys, shape (1,) or one per element when a tweak (e.g. an LA code) is given."""
    key = np.array([_seed(salt, tag)], dtype=np.uint64)
    if tweak is not None:
        key = _splitmix64(key ^ _splitmix64(np.asarray(tweak).ravel().astype(np.uint64)))
    keys = []
    for _ in range(_ROUNDS):
        key = _splitmix64(key)
        keys.append(key)
    return keys


def _split(domain_size: int) -> tuple[int, int]:
    """Radices (a, b) with a * b >= domain_size, a * b <= 2**64 and a * b close to the size."""
    a = math.isqrt(domain_size - 1) + 1
    b = -(-domain_size // a)
    if a * b > _TWO64:
        a = b = 1 << 32
    return a, b


def _below(h: np.ndarray, m: int) -> np.ndarray:
    """Map 64-bit hashes onto [0, m) for m <= 2**32: the top 32 bits times m, shifted down."""
    return ((h >> np.uint64(32)) * np.uint64(m)) >> np.uint64(32)


def _add_mod(x: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    """(x + y) mod m for x, y in [0, m), in place in x."""
    x += y
    # x - m wraps round to a huge number when x < m, so the minimum is the right one.
    np.minimum(x, x - np.uint64(m), out=x)
    return x


def _feistel(x: np.ndarray, a: int, b: int, keys: list[np.ndarray]) -> np.ndarray:
    """One pass of the Feistel network: a bijection of [0, a*b) (x = left * b + right).

    Each round adds (mod a, or mod b) a keyed splitmix64 hash of the other half, so each round
    can be undone by subtracting the same hash: the whole is a permutation.
    """
    left, right = np.divmod(x, np.uint64(b))
    for r, key in enumerate(keys):
        if r % 2 == 0:
            _add_mod(left, _below(_splitmix64(right ^ key), a), a)
        else:
            _add_mod(right, _below(_splitmix64(left ^ key), b), b)
    with np.errstate(over="ignore"):
        left *= np.uint64(b)
        left += right
        return left


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and each element's position among them (``np.unique``, but by table
    lookup when the values are small non-negative integers such as LA codes)."""
    if values.size and values.dtype.kind in "iu" and values.min() >= 0 and values.max() < 2**20:
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        distinct = np.flatnonzero(present)
        position = np.zeros(present.size, dtype=np.intp)
        position[distinct] = np.arange(distinct.size)
        return distinct, position[values]
    return np.unique(values, return_inverse=True)


def keyed_permutation(
    values: np.ndarray,
    domain_size: int,
    *,
    salt: int,
    tag: str,
    tweak: np.ndarray | None = None,
) -> np.ndarray:
    """Map values in ``[0, domain_size)`` through a keyed bijection of that interval.

    An 8-round Feistel network on the digits (left, right) of ``x = left * b + right`` with
    ``a * b`` just above ``domain_size`` (modular addition of a splitmix64 round function, so
    every round is invertible), then cycle-walking: outputs that land in
    ``[domain_size, a * b)`` go round again until they fall inside. The result is a permutation
    of ``[0, domain_size)``: distinct inputs always give distinct outputs.

    Args:
        values: whole numbers in ``[0, domain_size)``, any shape.
        domain_size: size of the interval, 1 to 2**64.
        salt: the run's salt; a different salt gives an unrelated permutation.
        tag: what the permutation is for (``"nhs"``, ``"pmr"``...); different tags give
            unrelated permutations under the same salt.
        tweak: optional whole numbers, one per value (e.g. LA codes): each distinct tweak
            value selects its own permutation.

    Returns:
        uint64 array of the same shape as ``values``.

    Raises:
        ValueError: a value outside ``[0, domain_size)``, or a bad domain size.

    Example:
        >>> out = keyed_permutation(np.arange(10), 10, salt=1, tag="demo")
        >>> sorted(out.tolist()) == list(range(10))
        True
    """
    domain_size = int(domain_size)
    if not 1 <= domain_size <= _TWO64:
        raise ValueError(f"domain_size must be between 1 and 2**64, got {domain_size}")
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"values must be whole numbers, got dtype {arr.dtype}")
    shape = arr.shape
    flat = arr.ravel()
    if flat.size and arr.dtype.kind == "i" and flat.min() < 0:
        raise ValueError(f"values must be at least 0, got {flat.min()}")
    x = flat.astype(np.uint64)
    if x.size and domain_size < _TWO64 and int(x.max()) >= domain_size:
        raise ValueError(f"values must be below domain_size {domain_size}, got {int(x.max())}")
    if tweak is None:
        keys = _round_keys(salt, tag, None)
    else:
        tweak = np.broadcast_to(np.asarray(tweak), shape).ravel()
        distinct, which = _distinct(tweak)
        keys = [k[which] for k in _round_keys(salt, tag, distinct)]
    a, b = _split(domain_size)
    y = _feistel(x, a, b, keys)
    if a * b > domain_size:
        limit = np.uint64(domain_size)
        todo = np.flatnonzero(y >= limit)
        while todo.size:
            sub = [k if k.shape[0] == 1 else k[todo] for k in keys]
            y[todo] = _feistel(y[todo], a, b, sub)
            todo = todo[y[todo] >= limit]
    return y.reshape(shape)


# --------------------------------------------------------------------------------------------
# Array helpers
# --------------------------------------------------------------------------------------------


def _ints(values, name: str) -> np.ndarray:
    """A whole-number array (int64), or a TypeError naming the argument."""
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.int64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be whole numbers") from None
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be whole numbers, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64")
    return arr.astype(np.int64, copy=False)


def _check_range(arr: np.ndarray, lo: int, hi: int, name: str) -> None:
    """Raise a ValueError unless every value is in [lo, hi]."""
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        bad = arr[(arr < lo) | (arr > hi)][0]
        raise ValueError(f"{name} must be between {lo} and {hi}, got {bad}")


def _person_index(person_ids, capacity: int, what: str, limit_name: str) -> np.ndarray:
    """person_id - 1 as uint64, checking 1 <= person_id <= capacity."""
    pid = _ints(person_ids, "person_ids")
    if pid.size and int(pid.min()) < 1:
        raise ValueError(f"{what}: person_ids must be positive (1, 2, ...), got {pid.min()}")
    if pid.size and int(pid.max()) > capacity:
        raise ValueError(
            f"{what}: person_id {int(pid.max()):,} exceeds {limit_name} ({capacity:,}); "
            f"only person_ids 1 to {capacity:,} can get distinct identifiers. "
            "Simulate fewer people."
        )
    return (pid - 1).astype(np.uint64)


def _digits(values: np.ndarray, base: int, width: int) -> np.ndarray:
    """The ``width`` lowest base-``base`` digits of uint64 values: a (n, width) uint8 array."""
    v = np.asarray(values, dtype=np.uint64).ravel()
    if base == 16:
        octets = v.astype(">u8").view(np.uint8).reshape(-1, 8)  # most significant first
        nibbles = np.empty((v.size, 8, 2), dtype=np.uint8)
        np.right_shift(octets, 4, out=nibbles[:, :, 0])
        np.bitwise_and(octets, 15, out=nibbles[:, :, 1])
        return nibbles.reshape(-1, 16)[:, 16 - width :]
    # Two digits per (slow) 64-bit division, split with fast 16-bit arithmetic.
    out = np.empty((v.size, width), dtype=np.uint8)
    pair, ub = np.uint64(base * base), np.uint16(base)
    j = width
    while j >= 2:
        v, r = np.divmod(v, pair)
        r = r.astype(np.uint16)
        high = r // ub
        out[:, j - 1] = r - high * ub
        out[:, j - 2] = high
        j -= 2
    if j == 1:
        out[:, 0] = v % np.uint64(base)
    return out


def _numerals(values: np.ndarray, base: int, width: int) -> np.ndarray:
    """Digits of uint64 values written in 0-9A-Z: (n, width) uint32 code points."""
    digits = _digits(values, base, width)
    codes = digits + np.uint8(48)
    if base > 10:
        codes += (digits > 9).view(np.uint8) * np.uint8(7)  # 10 -> "9" + 8 = "A"
    return codes.astype(np.uint32)


def _codes(text: str) -> np.ndarray:
    """Code points of an ASCII string (uint32)."""
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.uint32)


def _text(columns: list[np.ndarray], n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Join columns of code points ((n,) or (n, k) uint32 each) into a str array of ``shape``."""
    parts = [c[:, None] if c.ndim == 1 else c for c in columns]
    parts = [c for c in parts if c.shape[1]]
    mat = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.uint32)
    return mat.view(f"U{mat.shape[1]}").reshape(shape)


def _fixed(text: str, n: int) -> np.ndarray:
    """A constant string as an (n, len) uint32 block."""
    row = _codes(text)
    return np.broadcast_to(row, (n, row.size))


def _char_matrix(strings, width: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Code points of strings of exactly ``width`` characters.

    Returns the (n, width) int32 code points (rows of other lengths are junk), a mask of the
    rows that have exactly ``width`` characters, and the input's shape.
    """
    arr = np.asarray(strings)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "ascii")
    elif arr.dtype.kind != "U":
        arr = arr.astype(str)
    shape = arr.shape
    flat = arr.ravel()
    ok = np.strings.str_len(flat) == width
    mat = flat.astype(f"U{width}").view(np.uint32).reshape(-1, width).astype(np.int32)
    return mat, ok, shape


def _weighted_sum(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row sums of small whole numbers times weights (float32 BLAS: exact below 2**24)."""
    total = values.astype(np.float32) @ weights.astype(np.float32)
    return np.rint(total).astype(np.int64)


def _is_digit(codes: np.ndarray) -> np.ndarray:
    return (codes >= 48) & (codes <= 57)


def _all_digits(codes: np.ndarray) -> np.ndarray:
    """Rows of int32 code points that are all digits."""
    return ((codes - 48).view(np.uint32) < 10).all(axis=1)


def _letter_value(codes: np.ndarray) -> np.ndarray:
    """UPN letter value (0-22) of code points, -1 where not one of ``UPN_LETTERS``."""
    return np.where(codes < 128, _LETTER_VALUE[np.clip(codes, 0, 127)], -1)


# --------------------------------------------------------------------------------------------
# UPN
# --------------------------------------------------------------------------------------------


def _upn_check_values(body_values: np.ndarray) -> np.ndarray:
    """Check-letter index (0-22) of (n, 12) character values (digits, or a final letter 0-22)."""
    return _weighted_sum(body_values, _UPN_WEIGHTS) % 23


def _upn_body_check(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check-letter index (0-22) of (n, 12) code points following the check letter, and
    whether they are well formed (11 digits, then a digit or one of ``UPN_LETTERS``)."""
    last = codes[:, 11]
    last_value = np.where(_is_digit(last), last - 48, _letter_value(last))
    ok = _all_digits(codes[:, :11]) & (last_value >= 0)
    weights = _UPN_WEIGHTS[:11]
    total = _weighted_sum(codes[:, :11], weights) - 48 * int(weights.sum()) + 13 * last_value
    return total % 23, ok


def upn_check_letter(body12) -> np.ndarray:
    """The check letter of the 12 characters that follow it in a UPN.

    Characters 2-13 are weighted by their position (2..13), summed, and the sum modulo 23 read
    in ``UPN_LETTERS`` (0 -> A, ..., 22 -> Z). The 12 characters are 12 digits (a permanent
    UPN) or 11 digits and a letter (a temporary UPN), the letter counting as its index in
    ``UPN_LETTERS``.

    Args:
        body12: strings of 12 characters, any shape.

    Returns:
        Array of one-letter strings, same shape.

    Raises:
        ValueError: a string that is not 12 digits or 11 digits and a letter other than I/O/S.

    Example:
        >>> # The school-census rule 1510 worked example: (2x2)+(4x7)+(9x1)+(10x6)+(12x4)+(13x9)
        >>> # = 266 (printed as 267 in the support pages), 266 mod 23 = 13 -> P.
        >>> upn_check_letter(["207000016049", "801200005001"]).tolist()
        ['P', 'B']
    """
    codes, ok, shape = _char_matrix(body12, 12)
    check, well_formed = _upn_body_check(codes)
    ok &= well_formed
    if not ok.all():
        bad = np.asarray(body12).ravel()[np.flatnonzero(~ok)[0]]
        raise ValueError(
            f"upn_check_letter: {bad!r} is not 12 digits, or 11 digits and a letter (not I/O/S)"
        )
    return _text([_UPN_CODES[check]], codes.shape[0], shape)


def _upn_parts(la_codes, establishment_numbers, allocation_years, serials, serial_max: int):
    la, estab, years, serial = np.broadcast_arrays(
        _ints(la_codes, "la_codes"),
        _ints(establishment_numbers, "establishment_numbers"),
        _ints(allocation_years, "allocation_years"),
        _ints(serials, "serials"),
    )
    _check_range(la, 0, 999, "la_codes")
    _check_range(estab, 0, 9999, "establishment_numbers")
    _check_range(years, 0, 9999, "allocation_years")
    _check_range(serial, 0, serial_max, "serials")
    return la, estab, years % 100, serial


def make_upns(la_codes, establishment_numbers, allocation_years, serials) -> np.ndarray:
    """Permanent UPNs from their parts: check letter + LLL EEEE YY SSS.

    Args:
        la_codes: DfE LA numbers (3 digits) of the allocating school's LA.
        establishment_numbers: DfE establishment numbers (4 digits) of the allocating school.
        allocation_years: year of allocation, 4 digits or 2 (only the last two are kept).
        serials: 0-999, distinct within a school and year.

    Returns:
        Array of 13-character strings (broadcast shape of the inputs).

    Example:
        >>> make_upns([801], [2000], [2005], [1]).tolist()
        ['B801200005001']
    """
    la, estab, yy, serial = _upn_parts(
        la_codes, establishment_numbers, allocation_years, serials, 999
    )
    shape = la.shape
    body = ((la * 10_000 + estab) * 100 + yy) * 1000 + serial
    digits = _digits(body.astype(np.uint64), 10, 12)
    check = _upn_check_values(digits.astype(np.int64))
    n = digits.shape[0]
    return _text([_UPN_CODES[check], digits.astype(np.uint32) + 48], n, shape)


def make_temporary_upns(la_codes, establishment_numbers, allocation_years, serials) -> np.ndarray:
    """Temporary UPNs: check letter + LLL EEEE YY SS + a final letter.

    Schools issue these when a pupil's permanent UPN is not yet known; the final letter (never
    I, O or S) enters the check as its index in ``UPN_LETTERS``.

    Args:
        la_codes: DfE LA numbers (3 digits).
        establishment_numbers: DfE establishment numbers (4 digits).
        allocation_years: year of allocation, 4 digits or 2.
        serials: 0-2299: the two digits are ``serial // 23`` and the letter ``serial % 23``.

    Returns:
        Array of 13-character strings.

    Example:
        >>> make_temporary_upns([801], [2000], [2005], [0]).tolist()
        ['M80120000500A']
    """
    la, estab, yy, serial = _upn_parts(
        la_codes, establishment_numbers, allocation_years, serials, 100 * 23 - 1
    )
    shape = la.shape
    body = ((la * 10_000 + estab) * 100 + yy) * 100 + serial // 23
    digits = _digits(body.astype(np.uint64), 10, 11)
    letter = (serial % 23).ravel()
    values = np.concatenate([digits.astype(np.int64), letter[:, None]], axis=1)
    check = _upn_check_values(values)
    n = digits.shape[0]
    return _text([_UPN_CODES[check], digits.astype(np.uint32) + 48, _UPN_CODES[letter]], n, shape)


def assign_upns(person_ids, la_codes, allocation_years, salt: int) -> np.ndarray:
    """Distinct permanent UPNs for people, allocated in an LA in a given year.

    The establishment number and serial (7 digits) are a keyed permutation of ``person_id``
    within each (LA, year), drawn from establishment numbers 2000-5999 (primary and secondary
    schools), so two different people never get the same UPN, whatever shard each is in.

    Args:
        person_ids: positive int64, at most ``UPN_CAPACITY``.
        la_codes: DfE LA numbers of the allocating LA.
        allocation_years: year of allocation (4 digits or 2).
        salt: the run's salt.

    Returns:
        Array of 13-character UPNs.

    Raises:
        ValueError: a person_id above ``UPN_CAPACITY``, or an out-of-range LA code or year.

    Example:
        >>> u = assign_upns([1, 2], [886, 886], [2015, 2015], salt=3)
        >>> [x[1:4] for x in u], [x[8:10] for x in u]
        (['886', '886'], ['15', '15'])
    """
    pid = _ints(person_ids, "person_ids")
    la, years, _ = np.broadcast_arrays(
        _ints(la_codes, "la_codes"), _ints(allocation_years, "allocation_years"), pid
    )
    pid = np.broadcast_to(pid, la.shape)
    _check_range(la, 0, 999, "la_codes")
    _check_range(years, 0, 9999, "allocation_years")
    index = _person_index(pid, UPN_CAPACITY, "assign_upns", "UPN_CAPACITY")
    yy = years % 100
    slot = keyed_permutation(index, UPN_CAPACITY, salt=salt, tag="upn", tweak=la * 100 + yy)
    slot = slot.astype(np.int64)
    return make_upns(la, UPN_FIRST_ESTABLISHMENT + slot // 1000, yy, slot % 1000)


def is_valid_upn(upns) -> np.ndarray:
    """Whether each value is a well-formed UPN with the right check letter.

    Well-formed means SSDA903 rule 168's pattern (``UPN_PATTERN``: an upper-case letter other
    than I, O or S, then 12 digits or 11 digits and a letter); the final letter of a temporary
    UPN must also be one of ``UPN_LETTERS`` (the DfE never uses I, O or S there), since the
    check letter is computed from it. The unknown-UPN codes (UN1...) are not UPNs: test them
    against ``UPN_UNKNOWN_CODES``.

    Args:
        upns: strings (anything else, e.g. None or NaN, is invalid), any shape.

    Returns:
        Boolean array, same shape.

    Example:
        >>> is_valid_upn(["B801200005001", "A801200005001", "UN1", None]).tolist()
        [True, False, False, False]
    """
    codes, ok, shape = _char_matrix(upns, 13)
    check, well_formed = _upn_body_check(codes[:, 1:])
    ok &= well_formed & (_letter_value(codes[:, 0]) == check)
    return ok.reshape(shape)


# --------------------------------------------------------------------------------------------
# NHS numbers
# --------------------------------------------------------------------------------------------


def _nhs_check_from_digits(digits: np.ndarray) -> np.ndarray:
    """Modulus-11 check digit of (n, 9) digit values; -1 where the check would be 10."""
    check = 11 - _weighted_sum(digits, _NHS_WEIGHTS) % 11
    check = np.where(check == 11, 0, check)
    return np.where(check == 10, -1, check).astype(np.int8)


def _digit_matrix(values, width: int, what: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(n, width) digit values of whole numbers or digit strings, a validity mask, the shape."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        flat = arr.ravel().astype(np.int64)
        ok = (flat >= 0) & (flat < 10**width)
        digits = _digits(np.where(ok, flat, 0).astype(np.uint64), 10, width)
        return digits, ok, arr.shape
    if arr.dtype.kind in "SUO":
        arr = np.asarray(arr if arr.dtype.kind != "O" else arr.astype(str))
        if arr.dtype.kind == "S":
            arr = np.char.decode(arr, "ascii")
        arr = arr.copy()
        spaced = np.strings.str_len(arr) != width
        if spaced.any():  # the display form '943 476 5919'
            arr[spaced] = np.strings.replace(arr[spaced], " ", "")
        codes, ok, shape = _char_matrix(arr, width)
        ok &= _is_digit(codes).all(axis=1)
        return np.where(ok[:, None], codes - 48, 0), ok, shape
    raise TypeError(f"{what} must be whole numbers or strings of digits, got dtype {arr.dtype}")


def nhs_check_digit(first9) -> np.ndarray:
    """The NHS number check digit of nine-digit stems (modulus 11, weights 10 down to 2).

    ``11 - (weighted sum mod 11)``, with 11 read as 0; where that gives 10 the stem has no
    valid check digit and is never issued: -1 is returned there.

    Args:
        first9: nine-digit stems, as whole numbers or digit strings, any shape.

    Returns:
        int8 array of check digits (0-9, or -1), same shape.

    Raises:
        ValueError: a stem that is not nine digits.

    Example:
        >>> nhs_check_digit(["943476591", 999123456]).tolist()  # 999 123 456 has none
        [9, -1]
    """
    digits, ok, shape = _digit_matrix(first9, 9, "first9")
    if not ok.all():
        bad = np.asarray(first9).ravel()[np.flatnonzero(~ok)[0]]
        raise ValueError(f"nhs_check_digit: {bad!r} is not a nine-digit stem")
    return _nhs_check_from_digits(digits).reshape(shape)


def is_valid_nhs_number(numbers) -> np.ndarray:
    """Whether each value is a 10-digit NHS number with a correct modulus-11 check digit.

    Strings may carry the spaces of the display form ('943 476 5919'); whole numbers are read
    as 10 digits with leading zeros. This checks the format only, not the range (real NHS
    numbers pass too; test ``str(n).startswith('999')`` for the test range).

    Args:
        numbers: whole numbers or strings, any shape.

    Returns:
        Boolean array, same shape.

    Example:
        >>> is_valid_nhs_number(["9434765919", "943 476 5919", 9434765918, "94347659"]).tolist()
        [True, True, False, False]
    """
    digits, ok, shape = _digit_matrix(numbers, 10, "numbers")
    ok &= _nhs_check_from_digits(digits[:, :9]) == digits[:, 9]
    return ok.reshape(shape)


@functools.lru_cache(maxsize=1)
def _nhs_test_numbers() -> np.ndarray:
    """Every valid NHS number in the test range, ascending (int64, ``NHS_TEST_CAPACITY``)."""
    stems = np.arange(NHS_TEST_FIRST // 10, NHS_TEST_LAST // 10 + 1, dtype=np.int64)
    check = _nhs_check_from_digits(_digits(stems.astype(np.uint64), 10, 9))
    keep = check >= 0
    numbers = stems[keep] * 10 + check[keep]
    numbers.setflags(write=False)
    return numbers


def assign_nhs_numbers(person_ids, salt: int) -> np.ndarray:
    """A distinct, valid, never-issued NHS number for each person.

    ``person_id - 1`` goes through the keyed permutation of ``[0, NHS_TEST_CAPACITY)`` and
    picks that entry of the sorted list of valid numbers in 999 000 0000 - 999 999 9999. The
    result depends only on the person_id and salt (not on shards), and distinct person_ids
    (up to ``NHS_TEST_CAPACITY``) get distinct numbers.

    Args:
        person_ids: positive int64, at most ``NHS_TEST_CAPACITY`` (909,091).
        salt: the run's salt.

    Returns:
        Array of 10-digit strings (no spaces; see :func:`format_nhs_number`).

    Raises:
        ValueError: a person_id above ``NHS_TEST_CAPACITY``.

    Example:
        >>> n = assign_nhs_numbers([1, 2, 3], salt=0)
        >>> bool(is_valid_nhs_number(n).all()), len(set(n.tolist()))
        (True, 3)
    """
    index = _person_index(
        person_ids,
        NHS_TEST_CAPACITY,
        "assign_nhs_numbers",
        "NHS_TEST_CAPACITY, the number "
        "of valid NHS numbers in the test range 999 000 0000 - 999 999 9999",
    )
    slot = keyed_permutation(index, NHS_TEST_CAPACITY, salt=salt, tag="nhs")
    numbers = _nhs_test_numbers()[slot.astype(np.intp)]
    return _text([_numerals(numbers.astype(np.uint64), 10, 10)], numbers.size, index.shape)


def assign_new_nhs_numbers(person_ids, shard_people, population: int, salt: int) -> np.ndarray:
    """Second NHS numbers (issued after an adoption order), distinct from every other number.

    First numbers (:func:`assign_nhs_numbers`) take slots ``0 .. population - 1`` of the keyed
    permutation of the test range; the ``NHS_TEST_CAPACITY - population`` slots left are shared
    among shards in proportion to the people they hold, so each shard draws from its own block
    whatever the number of workers, and within a shard the people take slots in ``person_id``
    order. The numbers depend only on the people, the shard's range of ``person_id``, the
    population and the salt.

    Args:
        person_ids: distinct positive int64, the shard's people who get a new number.
        shard_people: ``(first, last)`` person_id of the shard (its people are ``first..last``).
        population: people in the run (person_ids ``1..population``), at most ``MAX_PEOPLE``
            for the blocks to hold one person in ``NHS_REISSUE_RESERVE``.
        salt: the run's salt (the one given to :func:`assign_nhs_numbers`).

    Returns:
        Array of 10-digit strings, in the order of ``person_ids``.

    Raises:
        ValueError: more people than the shard's block holds, or ids outside the shard.

    Example:
        >>> first = assign_nhs_numbers(np.arange(1, 1001), salt=0)
        >>> new = assign_new_nhs_numbers([7, 3], (1, 1000), population=1000, salt=0)
        >>> bool(is_valid_nhs_number(new).all()), bool(set(new) & set(first))
        (True, False)
    """
    pid = _ints(person_ids, "person_ids").ravel()
    lo, hi = (int(v) for v in shard_people)
    if not 1 <= lo <= hi <= population <= NHS_TEST_CAPACITY:
        raise ValueError(
            f"assign_new_nhs_numbers: shard people {lo}..{hi} must lie within the population "
            f"1..{population} (at most {NHS_TEST_CAPACITY:,})"
        )
    _check_range(pid, lo, hi, "person_ids")
    if np.unique(pid).size != pid.size:
        raise ValueError("assign_new_nhs_numbers: person_ids must be distinct")
    spare = NHS_TEST_CAPACITY - population
    start = population + (lo - 1) * spare // population
    block = population + hi * spare // population - start
    if pid.size > block:
        raise ValueError(
            f"assign_new_nhs_numbers: {pid.size} people of person_ids {lo}..{hi} need a new NHS "
            f"number, but the test range keeps only {block} spare for them with a population "
            f"of {population:,}; simulate fewer people (at most {MAX_PEOPLE:,})"
        )
    rank = np.argsort(np.argsort(pid, kind="stable"), kind="stable")
    slot = (start + rank).astype(np.uint64)
    slot = keyed_permutation(slot, NHS_TEST_CAPACITY, salt=salt, tag="nhs")
    numbers = _nhs_test_numbers()[slot.astype(np.intp)]
    return _text([_numerals(numbers.astype(np.uint64), 10, 10)], numbers.size, pid.shape)


def format_nhs_number(numbers) -> np.ndarray:
    """NHS numbers in their display form, '943 476 5919' (3-3-4).

    Args:
        numbers: 10-digit whole numbers or strings (spaces allowed), any shape.

    Returns:
        Array of 12-character strings.

    Raises:
        ValueError: a value that is not 10 digits.

    Example:
        >>> format_nhs_number(["9434765919"]).tolist()
        ['943 476 5919']
    """
    digits, ok, shape = _digit_matrix(numbers, 10, "numbers")
    if not ok.all():
        bad = np.asarray(numbers).ravel()[np.flatnonzero(~ok)[0]]
        raise ValueError(f"format_nhs_number: {bad!r} is not 10 digits")
    codes = (digits + 48).astype(np.uint32)
    n = digits.shape[0]
    space = np.full(n, ord(" "), dtype=np.uint32)
    return _text([codes[:, :3], space, codes[:, 3:6], space, codes[:, 6:]], n, shape)


# --------------------------------------------------------------------------------------------
# LA child ids (SSDA903 CHILD, CIN LAchildID)
# --------------------------------------------------------------------------------------------

_STYLE_NAMES = tuple(LA_CHILD_ID_STYLES)
_STYLE_SALT = 0x5C1D_903C_1A55_0001  # fixed: an LA's id style belongs to the LA, not the run
# Size of each style's number space: ids are a permutation of person_ids within it.
_STYLE_DOMAINS = {"numeric": 10**8 - 10**5, "padded": 10**9, "prefixed": 10**7, "la": 10**8}


def _la_hash(la: np.ndarray) -> np.ndarray:
    return _splitmix64(la.astype(np.uint64) ^ np.uint64(_STYLE_SALT))


def la_child_id_styles(la_codes) -> np.ndarray:
    """The child-id style each LA uses (a key of ``LA_CHILD_ID_STYLES``).

    Fixed by the LA number alone, so an LA keeps its style in every run and every salt.

    Args:
        la_codes: DfE LA numbers, any shape.

    Returns:
        Array of style names, same shape.

    Example:
        >>> la_child_id_styles([202, 886]).tolist()  # Camden, Kent
        ['numeric', 'la']
    """
    la = _ints(la_codes, "la_codes")
    _check_range(la, 0, 999, "la_codes")
    style = (_la_hash(la) % np.uint64(len(_STYLE_NAMES))).astype(np.intp)
    return np.asarray(np.asarray(_STYLE_NAMES)[style])


def la_child_ids(person_ids, la_codes, salt: int, generation=0) -> np.ndarray:
    """The id each LA's children's social care system gives a child.

    Each LA has one style (:func:`la_child_id_styles`); within an LA the id is a keyed
    permutation of (``person_id``, ``generation``), so distinct people always get distinct ids in
    the same LA. A child known to two LAs gets an id in each, unrelated to each other. An adopted
    child (``generation`` 1 from the adoption order) is a new child to every LA, with an id
    unrelated to the one before: the DfE's SSDA903 guidance has an adopted child who returns to
    care recorded under a new CHILD id, with the previous permanence instead linking the two. All
    ids are alphanumeric and at most ``LA_CHILD_ID_MAX_LENGTH`` (10) characters.

    Args:
        person_ids: positive int64, at most ``LA_CHILD_ID_CAPACITY``.
        la_codes: DfE LA numbers, broadcastable against ``person_ids``.
        salt: the run's salt.
        generation: 0 (birth identity) or 1 (after an adoption order), broadcastable.

    Returns:
        Array of strings (dtype ``<U10``), broadcast shape.

    Raises:
        ValueError: a person_id above ``LA_CHILD_ID_CAPACITY``, an LA code outside 0-999, or
            a generation outside 0 to ``LA_CHILD_ID_GENERATIONS`` - 1.

    Example:
        >>> ids = la_child_ids([1, 2, 1, 1], [886, 886, 202, 886], salt=5, generation=[0, 0, 0, 1])
        >>> ids[0] != ids[1], ids[0] != ids[3], ids.dtype.str
        (True, True, '<U10')
    """
    pid, la, gen = np.broadcast_arrays(
        _ints(person_ids, "person_ids"),
        _ints(la_codes, "la_codes"),
        _ints(generation, "generation"),
    )
    shape = pid.shape
    _check_range(la, 0, 999, "la_codes")
    _check_range(gen, 0, LA_CHILD_ID_GENERATIONS - 1, "generation")
    index = _person_index(pid, LA_CHILD_ID_CAPACITY, "la_child_ids", "LA_CHILD_ID_CAPACITY")
    index = index.ravel() + gen.ravel().astype(np.uint64) * np.uint64(LA_CHILD_ID_CAPACITY)
    la = la.ravel()
    h = _la_hash(la)
    style = (h % np.uint64(len(_STYLE_NAMES))).astype(np.intp)
    prefix_choice = ((h >> np.uint64(8)) % np.uint64(len(LA_CHILD_ID_PREFIXES))).astype(np.intp)
    out = np.empty(index.size, dtype=f"U{LA_CHILD_ID_MAX_LENGTH}")
    prefixes = _codes("".join(LA_CHILD_ID_PREFIXES)).reshape(-1, 2)
    for s, name in enumerate(_STYLE_NAMES):
        rows = np.flatnonzero(style == s)
        if not rows.size:
            continue
        n = rows.size
        v = keyed_permutation(
            index[rows], _STYLE_DOMAINS[name], salt=salt, tag="la_child_id", tweak=la[rows]
        )
        if name == "numeric":
            out[rows] = (v + np.uint64(10**5)).astype(np.int64).astype("U8")
        elif name == "padded":
            out[rows] = _text([_numerals(v, 10, 9)], n, (n,))
        elif name == "prefixed":
            out[rows] = _text([prefixes[prefix_choice[rows]], _numerals(v, 10, 7)], n, (n,))
        else:
            out[rows] = _text([_fixed("LA", n), _numerals(v, 10, 8)], n, (n,))
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# Research identifiers: PMR, HES token person id, EPIKEY, anonymised ids
# --------------------------------------------------------------------------------------------


def pmrs(person_ids, salt: int) -> np.ndarray:
    """Anonymised Pupil Matching References: 18 upper-case hexadecimal characters.

    The last 16 characters are a keyed permutation of ``person_id`` over all 64-bit values, so
    distinct people always get distinct PMRs; the first two are a keyed hash of the rest.

    Args:
        person_ids: positive int64.
        salt: the run's salt.

    Returns:
        Array of 18-character strings.

    Example:
        >>> p = pmrs([1, 2], salt=0)
        >>> [len(x) for x in p], p[0] != p[1]
        ([18, 18], True)
    """
    index = _person_index(person_ids, 2**63 - 1, "pmrs", "the int64 range")
    y = keyed_permutation(index, _TWO64, salt=salt, tag="pmr")
    lead = _splitmix64(y.ravel() ^ np.uint64(_seed(salt, "pmr-lead"))) >> np.uint64(56)
    n = y.size
    return _text([_numerals(lead, 16, 2), _numerals(y, 16, 16)], n, index.shape)


def token_person_ids(person_ids, salt: int) -> np.ndarray:
    """HES Token Person IDs: '0000' and 11 characters from 0-9A-Z (UCL ECHILD_Synthetic style).

    The 11 characters are a keyed permutation of ``person_id`` over ``[0, 36**11)``.

    Args:
        person_ids: positive int64.
        salt: the run's salt.

    Returns:
        Array of 15-character strings.

    Example:
        >>> t = token_person_ids([1], salt=0)
        >>> t[0][:4], len(t[0])
        ('0000', 15)
    """
    index = _person_index(
        person_ids, TOKEN_PERSON_ID_CAPACITY, "token_person_ids", "TOKEN_PERSON_ID_CAPACITY"
    )
    y = keyed_permutation(index, TOKEN_PERSON_ID_CAPACITY, salt=salt, tag="token_person_id")
    n = y.size
    return _text(
        [_fixed(TOKEN_PERSON_ID_PREFIX, n), _numerals(y, 36, 11)],
        n,
        index.shape,
    )


def epikeys(keys, salt: int) -> np.ndarray:
    """HES episode keys: 12-digit numbers without a leading zero, one per distinct key.

    Args:
        keys: whole numbers in ``[0, EPIKEY_CAPACITY)`` identifying episodes (e.g. a running
            episode number, or ``person_id * 1000 + episode_order``).
        salt: the run's salt.

    Returns:
        Array of 12-character digit strings.

    Raises:
        ValueError: a key outside ``[0, EPIKEY_CAPACITY)``.

    Example:
        >>> e = epikeys([0, 1], salt=0)
        >>> [len(x) for x in e], e[0] != e[1]
        ([12, 12], True)
    """
    k = _ints(keys, "keys")
    _check_range(k, 0, EPIKEY_CAPACITY - 1, "epikeys: keys")
    y = keyed_permutation(k, EPIKEY_CAPACITY, salt=salt, tag="epikey") + np.uint64(10**11)
    return _text([_numerals(y, 10, 12)], y.size, k.shape)


LA_NUMBERS = 1000
"""DfE LA numbers have three digits."""


def child_keys(person_ids, la_codes, generations=0) -> np.ndarray:
    """One int64 per child as an LA's records know them: (person, LA, identity).

    ``(person_id * LA_CHILD_ID_GENERATIONS + generation) * LA_NUMBERS + la_code``, so sorting by
    key sorts by person, then identity, then LA. For grouping and counting (the SSDA903 and CIN
    writers, the calibration); :func:`split_child_keys` undoes it.

    Example:
        >>> child_keys([12, 12], [886, 886], [0, 1]).tolist()
        [24886, 25886]
    """
    pid = np.asarray(person_ids, dtype=np.int64)
    gen = np.asarray(generations, dtype=np.int64)
    return (pid * LA_CHILD_ID_GENERATIONS + gen) * LA_NUMBERS + np.asarray(la_codes, dtype=np.int64)


def split_child_keys(keys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(person_ids, la_codes, generations)`` of :func:`child_keys`.

    Example:
        >>> [a.tolist() for a in split_child_keys([25886])]
        [[12], [886], [1]]
    """
    child, la = np.divmod(np.asarray(keys, dtype=np.int64), LA_NUMBERS)
    pid, gen = np.divmod(child, LA_CHILD_ID_GENERATIONS)
    return pid, la, gen


PERSON_LA_KEY_GENERATION = 10**15
"""Added to :func:`person_la_keys` for a child's adoptive identity (generation 1)."""


def person_la_keys(person_ids, la_codes, generation=0) -> np.ndarray:
    """One int64 key per (person, LA, identity), for :func:`anon_ids`.

    ``person_id * 1000 + la_code``, plus ``PERSON_LA_KEY_GENERATION`` for an adopted child's
    identity after the order (``generation`` 1), which the LA records as a new child (see
    :func:`la_child_ids`).

    Example:
        >>> person_la_keys([12, 12], [886, 886], generation=[0, 1]).tolist()
        [12886, 1000000000012886]
    """
    pid, la, gen = np.broadcast_arrays(
        _ints(person_ids, "person_ids"),
        _ints(la_codes, "la_codes"),
        _ints(generation, "generation"),
    )
    _check_range(la, 0, 999, "la_codes")
    _check_range(gen, 0, LA_CHILD_ID_GENERATIONS - 1, "generation")
    _check_range(pid, 0, PERSON_LA_KEY_GENERATION // 1000 - 1, "person_ids")
    return pid * 1000 + la + gen * PERSON_LA_KEY_GENERATION


def anon_ids(values, salt: int, prefix: str = "") -> np.ndarray:
    """Anonymised ids as the DfE hands them to researchers: ``prefix`` + 16 hex characters.

    For the NPD social-care modules' anonymised LA child ids (e.g. ``CLA_child_id_anon``):
    pass one whole-number key per (child, LA), such as :func:`person_la_keys`. The mapping is
    a keyed permutation of all 64-bit values, so distinct keys get distinct ids; the prefix is
    part of the key, so different modules get unrelated ids for the same child.

    Args:
        values: whole numbers at least 0.
        salt: the run's salt.
        prefix: ASCII letters or digits put in front (default none).

    Returns:
        Array of strings of ``len(prefix) + 16`` characters.

    Example:
        >>> a = anon_ids(person_la_keys([1, 1], [886, 202]), salt=0, prefix="CLA")
        >>> [x[:3] for x in a], a[0] != a[1]
        (['CLA', 'CLA'], True)
    """
    if not (prefix == "" or (prefix.isascii() and prefix.isalnum())):
        raise ValueError(f"anon_ids: prefix must be ASCII letters or digits, got {prefix!r}")
    v = _ints(values, "values")
    _check_range(v, 0, 2**63 - 1, "anon_ids: values")
    y = keyed_permutation(v, _TWO64, salt=salt, tag=f"anon_id|{prefix}")
    n = y.size
    return _text([_fixed(prefix, n), _numerals(y, 16, 16)], n, v.shape)
