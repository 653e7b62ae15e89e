"""Apply the PS3.15 Basic Application Level Confidentiality Profile to a pydicom Dataset.

Options applied on top of the Basic Profile (PS3.15 E.3):

* Retain Longitudinal Temporal Information with Modified Dates (DCM 113107): every date,
  time and date-time of Table E.1-1 is shifted by a per-donor whole-day offset instead of being
  removed, so intervals within one donor stay exact; Patient's Birth Date/Time are still emptied.

Stricter than the profile, on purpose (each is a place PHI has been found in the wild):

* every private attribute is removed, private creators included (the profile's default);
* whole overlay (60xx) and curve (50xx) groups go, not only their data elements;
* the Icon Image Sequence goes (a thumbnail can show burned-in text);
* attributes outside Table E.1-1 pass a safety net: person names and free text (PN, LT, ST, UT)
  are removed, dates are shifted, instance UIDs that are not registered DICOM UIDs are replaced,
  attributes unknown to the data dictionary are removed.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pydicom.datadict import dictionary_has_tag, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from consent.deid import keys
from consent.deid.profile import BASIC_PROFILE, REPEATING_GROUP_ACTIONS

logger = logging.getLogger(__name__)

DEID_METHOD: Final = (
    "DICOM PS3.15 E Basic Profile",
    "Retain Longitudinal Modified Dates",
    "Tessera consent.deid 1",
)
#: (code value, meaning) written to DeidentificationMethodCodeSequence, scheme DCM (PS3.16 CID 7050).
METHOD_CODES: Final = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
CLEAN_PIXEL_CODE: Final = ("113101", "Clean Pixel Data Option")

_DATE_VRS: Final = frozenset({"DA", "DT", "TM"})
_FREE_TEXT_VRS: Final = frozenset({"LT", "ST", "UT"})
_BINARY_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMERIC_VRS: Final = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})

TAG_PATIENT_NAME: Final = 0x00100010
TAG_PATIENT_ID: Final = 0x00100020
_TAG_BIRTH_DATE: Final = 0x00100030
_TAG_BIRTH_TIME: Final = 0x00100032
_TAG_PIXEL_DATA: Final = 0x7FE00010
#: Removed although Table E.1-1 does not list them: the icon thumbnail may carry burned-in text.
_EXTRA_REMOVE: Final = frozenset({0x00880200})
#: UI attributes that name a class or a coding scheme, not an instance: kept.
_DEFINITION_UID_KEYWORDS: Final = frozenset(
    {
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
        "ContextUID",
        "MappingResourceUID",
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "PrivateInformationCreatorUID",
    }
)

#: Type 1 attributes of the accepted image IODs that carry a combined Table E.1-1 action.
#: Enhanced CT/MR (Enhanced General Equipment Module, PS3.3 C.7.5.2) require Device Serial Number.
_TYPE1_ENHANCED: Final = frozenset({0x00181000})
#: Type 2 attributes of the accepted image IODs (Patient, General Study, General Series and
#: General Image modules) that carry a combined action. Table E.1-1 already gives Z for the rest.
_TYPE2: Final = frozenset({0x00080020, 0x00080030, 0x00080050, 0x00080090, 0x00200010})
ENHANCED_SOP_CLASSES: Final = frozenset(
    {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4.1"}
)

_DUMMY_TEXT: Final = "ANONYMIZED"
_DATE_RE: Final = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


@dataclass(frozen=True, slots=True)
class DeidContext:
    """Keys for one donor and what the IOD requires."""

    secret: bytes
    donor_key: str
    shift_days: int
    pseudonym: str
    enhanced: bool

    @classmethod
    def for_donor(cls, *, secret: bytes, donor_key: str, sop_class_uid: str) -> DeidContext:
        return cls(
            secret=secret,
            donor_key=donor_key,
            shift_days=keys.date_shift_days(secret=secret, donor_key=donor_key),
            pseudonym=keys.donor_pseudonym(secret=secret, donor_key=donor_key),
            enhanced=sop_class_uid in ENHANCED_SOP_CLASSES,
        )

    def uid(self, value: str) -> str:
        return keys.keyed_uid(value, secret=self.secret, donor_key=self.donor_key)


def deidentify_dataset(ds: Dataset, ctx: DeidContext) -> None:
    """De-identify ``ds`` in place (the main data set; file meta is rebuilt by the writer).

    Parameters
    ----------
    ds
        A parsed data set whose Pixel Data is already native little endian.
    ctx
        Keys and IOD facts from :meth:`DeidContext.for_donor`.
    """
    _clean(ds, ctx, top_level=True)
    ds.PatientName = ctx.pseudonym
    ds.PatientID = ctx.pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = list(DEID_METHOD)
    ds.DeidentificationMethodCodeSequence = Sequence(
        [_code_item(value, meaning) for value, meaning in METHOD_CODES]
    )


def add_clean_pixel_code(ds: Dataset) -> None:
    """Record the Clean Pixel Data Option (113101) after a coordinator redacted burned-in text."""
    codes = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    if not any(item.get("CodeValue") == CLEAN_PIXEL_CODE[0] for item in codes):
        codes.append(_code_item(*CLEAN_PIXEL_CODE))
    ds.DeidentificationMethodCodeSequence = codes
    ds.BurnedInAnnotation = "NO"


def _code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _repeating_action(tag: int) -> str | None:
    group, element = tag >> 16, tag & 0xFFFF
    for mask, value, elem, action, _name in REPEATING_GROUP_ACTIONS:
        if group & mask == value and (elem is None or elem == element):
            return action
    return None


def _clean(ds: Dataset, ctx: DeidContext, *, top_level: bool) -> None:
    for tag in list(ds.keys()):
        tag_int = int(tag)
        if tag.is_private or tag.element == 0 or tag_int in _EXTRA_REMOVE:
            del ds[tag]
            continue
        group = tag.group
        if group & 0xFF00 in (0x5000, 0x6000) or _repeating_action(tag_int) == "X":
            del ds[tag]
            continue
        if tag_int == _TAG_PIXEL_DATA:
            continue
        elem = ds[tag]
        rule = BASIC_PROFILE.get(tag_int)
        action = (
            _resolve(rule[0], tag_int, elem.VR, ctx, top_level)
            if rule
            else _safety_net(tag_int, elem)
        )
        _ACTIONS[action](ds, elem, ctx)


def _resolve(code: str, tag: int, vr: str, ctx: DeidContext, top_level: bool) -> str:
    if vr in _DATE_VRS and code != "U":
        # The Modified Dates option (column "Rtn. Long. Modif. Dates" = C) covers every date and
        # time of the table; birth date/time stay Z because a shifted birth date plus the
        # (shifted) study date still gives the exact age, which the Basic Profile removes.
        return "Z" if tag in (_TAG_BIRTH_DATE, _TAG_BIRTH_TIME) else "C"
    required: int | None = None
    if top_level:
        if ctx.enhanced and tag in _TYPE1_ENHANCED:
            required = 1
        elif tag in _TYPE2:
            required = 2
    if code == "X/Z/U*":
        # Keep the sequence: its SOP Instance UIDs are replaced like every other instance UID,
        # which keeps references between de-identified instances valid.
        return "recurse"
    if code in ("X/Z", "X/D", "Z/D", "X/Z/D"):
        options = code.split("/")
        if required == 1 and "D" in options:
            return "D"
        if required in (1, 2) and "Z" in options:
            return "Z"
        return options[0]
    return code


def _safety_net(tag: int, elem: DataElement) -> str:
    vr = elem.VR
    if not dictionary_has_tag(tag) or vr == "UN":
        return "X"
    if vr == "SQ":
        return "recurse"
    if vr in _DATE_VRS:
        return "C"
    if vr == "PN" or vr in _FREE_TEXT_VRS:
        return "X"
    if vr == "UI":
        return "K" if keyword_for_tag(tag) in _DEFINITION_UID_KEYWORDS else "U?"
    return "K"


def _remove(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    del ds[elem.tag]


def _keep(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    return None


def _recurse(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    if elem.VR != "SQ":
        return
    for item in elem.value:
        _clean(item, ctx, top_level=False)


def _empty(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    elem.value = [] if elem.VR == "SQ" else None


def _dummy(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    vr = elem.VR
    if vr == "SQ" or vr in _BINARY_VRS:
        _empty(ds, elem, ctx)
    elif vr == "UI":
        _replace_uid(ds, elem, ctx)
    elif vr in _DATE_VRS:
        _shift(ds, elem, ctx)
    elif vr in _NUMERIC_VRS or vr in ("DS", "IS"):
        elem.value = "0" if vr in ("DS", "IS") else 0
    elif vr == "AS":
        elem.value = "000Y"
    else:
        elem.value = _DUMMY_TEXT


def _replace_uid(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    if elem.VR != "UI":
        del ds[elem.tag]
        return
    elem.value = _map_values(elem.value, ctx.uid)


def _replace_unregistered_uid(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    elem.value = _map_values(elem.value, lambda uid: uid if uid in UID_dictionary else ctx.uid(uid))


def _shift(ds: Dataset, elem: DataElement, ctx: DeidContext) -> None:
    shifter = {"DA": _shift_date, "DT": _shift_datetime, "TM": _keep_time}.get(elem.VR)
    if shifter is None:
        del ds[elem.tag]
        return
    elem.value = _map_values(elem.value, lambda value: shifter(value, ctx.shift_days))


def _map_values(value: Any, func: Callable[[str], str]) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, str):
        return func(value)
    return [func(str(item)) for item in value]


def _shift_date(value: str, days: int) -> str:
    text = value.strip().replace(".", "")
    match = _DATE_RE.match(text)
    if not match:
        return ""
    try:
        date = dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return ""
    try:
        return (date + dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return ""


def _shift_datetime(value: str, days: int) -> str:
    text = value.strip()
    if len(text) < 8:
        # A year or year-month alone cannot be shifted by days consistently: drop it.
        return ""
    date = _shift_date(text[:8], days)
    return date + text[8:] if date else ""


def _keep_time(value: str, days: int) -> str:
    # Whole-day shifts leave the time of day unchanged; intervals stay exact.
    return value


_ACTIONS: Final[dict[str, Callable[[Dataset, DataElement, DeidContext], None]]] = {
    "X": _remove,
    "Z": _empty,
    "D": _dummy,
    "U": _replace_uid,
    "U?": _replace_unregistered_uid,
    "K": _keep,
    "C": _shift,
    "recurse": _recurse,
}
