"""Keyed UIDs, pseudonyms and date shifts: deterministic per donor, valid, and never shared."""

from __future__ import annotations

import datetime as dt
import io
import re

import pydicom
import pytest

from consent.deid import keys, process
from consent.deid.dicom_deid import _shift_date, _shift_datetime
from consent.deid.profile import ACTION_CODES, BASIC_PROFILE, REPEATING_GROUP_ACTIONS
from tests.consent.deid.conftest import (
    DONOR,
    NO_OCR,
    REF_UID,
    SECRET,
    SERIES_UID,
    SOP_UID,
    STUDY_UID,
    build_ct,
)

UID_RE = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


def _clean(data: bytes, donor: str = DONOR) -> pydicom.Dataset:
    processed = process(data, filename_hint="x", donor_key=donor, secret=SECRET, limits=NO_OCR)
    return pydicom.dcmread(io.BytesIO(processed.cleaned))


@pytest.mark.parametrize("uid", [STUDY_UID, SOP_UID, "1.2.3", "1.2.840.10008.5.1.4.1.1.2 "])
def test_keyed_uid_is_a_valid_2_25_uid(uid: str) -> None:
    out = keys.keyed_uid(uid, secret=SECRET, donor_key=DONOR)
    assert UID_RE.match(out)
    assert len(out) <= 64
    value = int(out.removeprefix("2.25."))
    assert value < 2**128
    assert (value >> 76) & 0xF == 8  # UUID version 8
    assert (value >> 62) & 0x3 == 0b10  # RFC 9562 variant
    assert pydicom.uid.UID(out).is_valid


def test_keyed_uid_depends_on_uid_donor_and_secret() -> None:
    base = keys.keyed_uid(STUDY_UID, secret=SECRET, donor_key=DONOR)
    assert keys.keyed_uid(STUDY_UID, secret=SECRET, donor_key=DONOR) == base
    assert keys.keyed_uid(STUDY_UID, secret=SECRET, donor_key="donor-0002") != base
    assert keys.keyed_uid(STUDY_UID, secret=b"other", donor_key=DONOR) != base
    assert keys.keyed_uid(SERIES_UID, secret=SECRET, donor_key=DONOR) != base


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        keys.keyed_uid(STUDY_UID, secret=b"", donor_key=DONOR)


def test_same_file_same_donor_gives_identical_bytes() -> None:
    data = build_ct()
    first = process(data, filename_hint="a", donor_key=DONOR, secret=SECRET, limits=NO_OCR)
    second = process(data, filename_hint="b", donor_key=DONOR, secret=SECRET, limits=NO_OCR)
    assert first.cleaned == second.cleaned
    assert first.sha256 == second.sha256


def test_uids_are_consistent_across_files_and_include_file_meta() -> None:
    single = _clean(build_ct())
    multi = _clean(build_ct(frames=3))
    expected_study = keys.keyed_uid(STUDY_UID, secret=SECRET, donor_key=DONOR)
    expected_sop = keys.keyed_uid(SOP_UID, secret=SECRET, donor_key=DONOR)
    assert single.StudyInstanceUID == multi.StudyInstanceUID == expected_study
    assert single.SOPInstanceUID == expected_sop
    assert single.file_meta.MediaStorageSOPInstanceUID == expected_sop
    ref = keys.keyed_uid(REF_UID, secret=SECRET, donor_key=DONOR)
    assert single.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ref
    assert "RequestAttributesSequence" not in single  # X in Table E.1-1
    assert single.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # class UIDs are kept


def test_other_donor_gets_other_uids_and_pseudonym() -> None:
    mine, theirs = _clean(build_ct()), _clean(build_ct(), donor="donor-0002")
    assert mine.StudyInstanceUID != theirs.StudyInstanceUID
    assert mine.PatientID != theirs.PatientID
    assert re.fullmatch(r"TSR-[A-Z2-7]{16}", mine.PatientID)


def test_dates_are_shifted_by_the_donor_offset_and_times_kept() -> None:
    ds = _clean(build_ct())
    shift = keys.date_shift_days(secret=SECRET, donor_key=DONOR)
    assert -keys.MAX_SHIFT_DAYS <= shift <= -keys.MIN_SHIFT_DAYS
    expected = (dt.date(2020, 3, 15) + dt.timedelta(days=shift)).strftime("%Y%m%d")
    assert ds.StudyDate == expected
    assert ds.SeriesDate == expected
    assert ds.ContentDate == expected
    acquisition = dt.date.fromisoformat(ds.AcquisitionDate)
    assert (acquisition - dt.date.fromisoformat(ds.StudyDate)).days == 1
    assert ds.AcquisitionDateTime == expected + "101010.000000"
    assert ds.StudyTime == "101500"


def test_date_shift_is_the_same_for_every_file_of_a_donor_and_differs_between_donors() -> None:
    shifts = {keys.date_shift_days(secret=SECRET, donor_key=f"donor-{i}") for i in range(50)}
    assert len(shifts) > 40
    assert keys.date_shift_days(secret=SECRET, donor_key=DONOR) == keys.date_shift_days(
        secret=SECRET, donor_key=DONOR
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200315", "20200305"),
        ("2020.03.15", "20200305"),
        ("20200301", "20200220"),
        ("2020", ""),
        ("garbage1", ""),
        ("20201341", ""),
    ],
)
def test_shift_date_cases(value: str, expected: str) -> None:
    assert _shift_date(value, -10) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200315101010.5+0100", "20200305101010.5+0100"),
        ("20200315", "20200305"),
        ("2020", ""),
    ],
)
def test_shift_datetime_cases(value: str, expected: str) -> None:
    assert _shift_datetime(value, -10) == expected


def test_profile_table_uses_only_standard_action_codes() -> None:
    assert {action for action, _name in BASIC_PROFILE.values()} <= ACTION_CODES
    assert len(BASIC_PROFILE) == 652
    assert BASIC_PROFILE[0x00100010] == ("Z", "Patient's Name")
    assert BASIC_PROFILE[0x00080018][0] == "U"
    assert BASIC_PROFILE[0x00081140][0] == "X/Z/U*"
    assert BASIC_PROFILE[0x00181000][0] == "X/Z/D"
    assert BASIC_PROFILE[0x00020003][0] == "U"
    assert [rule[3] for rule in REPEATING_GROUP_ACTIONS] == ["X", "X", "X"]
