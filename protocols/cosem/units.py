"""Physical units of the Blue Book (IEC 62056-6-2 unit table), scaler_unit and exact scaling."""

from __future__ import annotations

from decimal import Context, Decimal
from enum import IntEnum
from typing import NamedTuple

from protocols.axdr import Data, DataTag
from protocols.cosem._base import expect_int, expect_structure
from protocols.errors import EncodeError

__all__ = ["ScalerUnit", "Unit", "apply_scaler", "unit_symbol"]


_EXACT = Context(prec=60)


class Unit(IntEnum):
    """The ``unit`` enum of scaler_unit (Blue Book, IEC 62056-6-2, table of units)."""

    YEAR = 1
    MONTH = 2
    WEEK = 3
    DAY = 4
    HOUR = 5
    MINUTE = 6
    SECOND = 7
    DEGREE = 8
    DEGREE_CELSIUS = 9
    CURRENCY = 10
    METRE = 11
    METRE_PER_SECOND = 12
    CUBIC_METRE = 13
    CUBIC_METRE_CORRECTED = 14
    CUBIC_METRE_PER_HOUR = 15
    CUBIC_METRE_PER_HOUR_CORRECTED = 16
    CUBIC_METRE_PER_DAY = 17
    CUBIC_METRE_PER_DAY_CORRECTED = 18
    LITRE = 19
    KILOGRAM = 20
    NEWTON = 21
    NEWTON_METRE = 22
    PASCAL = 23
    BAR = 24
    JOULE = 25
    JOULE_PER_HOUR = 26
    WATT = 27
    VOLT_AMPERE = 28
    VAR = 29
    WATT_HOUR = 30
    VOLT_AMPERE_HOUR = 31
    VAR_HOUR = 32
    AMPERE = 33
    COULOMB = 34
    VOLT = 35
    VOLT_PER_METRE = 36
    FARAD = 37
    OHM = 38
    OHM_SQUARE_METRE_PER_METRE = 39
    WEBER = 40
    TESLA = 41
    AMPERE_PER_METRE = 42
    HENRY = 43
    HERTZ = 44
    PER_WATT_HOUR = 45
    PER_VAR_HOUR = 46
    PER_VOLT_AMPERE_HOUR = 47
    VOLT_SQUARED_HOUR = 48
    AMPERE_SQUARED_HOUR = 49
    KILOGRAM_PER_SECOND = 50
    SIEMENS = 51
    KELVIN = 52
    PER_VOLT_SQUARED_HOUR = 53
    PER_AMPERE_SQUARED_HOUR = 54
    PER_CUBIC_METRE = 55
    PERCENT = 56
    AMPERE_HOUR = 57
    WATT_HOUR_PER_CUBIC_METRE = 60
    JOULE_PER_CUBIC_METRE = 61
    MOLE_PERCENT = 62
    GRAM_PER_CUBIC_METRE = 63
    PASCAL_SECOND = 64
    JOULE_PER_KILOGRAM = 65
    GRAM_PER_SQUARE_CENTIMETRE = 66
    ATMOSPHERE = 67
    DECIBEL_MILLIWATT = 70
    DECIBEL_MICROVOLT = 71
    DECIBEL = 72
    OTHER = 254
    COUNT = 255


_SYMBOLS: dict[int, str] = {
    Unit.YEAR: "a",
    Unit.MONTH: "mo",
    Unit.WEEK: "wk",
    Unit.DAY: "d",
    Unit.HOUR: "h",
    Unit.MINUTE: "min",
    Unit.SECOND: "s",
    Unit.DEGREE: "\u00b0",
    Unit.DEGREE_CELSIUS: "\u00b0C",
    Unit.CURRENCY: "currency",
    Unit.METRE: "m",
    Unit.METRE_PER_SECOND: "m/s",
    Unit.CUBIC_METRE: "m\u00b3",
    Unit.CUBIC_METRE_CORRECTED: "m\u00b3",
    Unit.CUBIC_METRE_PER_HOUR: "m\u00b3/h",
    Unit.CUBIC_METRE_PER_HOUR_CORRECTED: "m\u00b3/h",
    Unit.CUBIC_METRE_PER_DAY: "m\u00b3/d",
    Unit.CUBIC_METRE_PER_DAY_CORRECTED: "m\u00b3/d",
    Unit.LITRE: "l",
    Unit.KILOGRAM: "kg",
    Unit.NEWTON: "N",
    Unit.NEWTON_METRE: "Nm",
    Unit.PASCAL: "Pa",
    Unit.BAR: "bar",
    Unit.JOULE: "J",
    Unit.JOULE_PER_HOUR: "J/h",
    Unit.WATT: "W",
    Unit.VOLT_AMPERE: "VA",
    Unit.VAR: "var",
    Unit.WATT_HOUR: "Wh",
    Unit.VOLT_AMPERE_HOUR: "VAh",
    Unit.VAR_HOUR: "varh",
    Unit.AMPERE: "A",
    Unit.COULOMB: "C",
    Unit.VOLT: "V",
    Unit.VOLT_PER_METRE: "V/m",
    Unit.FARAD: "F",
    Unit.OHM: "\u03a9",
    Unit.OHM_SQUARE_METRE_PER_METRE: "\u03a9m\u00b2/m",
    Unit.WEBER: "Wb",
    Unit.TESLA: "T",
    Unit.AMPERE_PER_METRE: "A/m",
    Unit.HENRY: "H",
    Unit.HERTZ: "Hz",
    Unit.PER_WATT_HOUR: "1/(Wh)",
    Unit.PER_VAR_HOUR: "1/(varh)",
    Unit.PER_VOLT_AMPERE_HOUR: "1/(VAh)",
    Unit.VOLT_SQUARED_HOUR: "V\u00b2h",
    Unit.AMPERE_SQUARED_HOUR: "A\u00b2h",
    Unit.KILOGRAM_PER_SECOND: "kg/s",
    Unit.SIEMENS: "S",
    Unit.KELVIN: "K",
    Unit.PER_VOLT_SQUARED_HOUR: "1/(V\u00b2h)",
    Unit.PER_AMPERE_SQUARED_HOUR: "1/(A\u00b2h)",
    Unit.PER_CUBIC_METRE: "1/m\u00b3",
    Unit.PERCENT: "%",
    Unit.AMPERE_HOUR: "Ah",
    Unit.WATT_HOUR_PER_CUBIC_METRE: "Wh/m\u00b3",
    Unit.JOULE_PER_CUBIC_METRE: "J/m\u00b3",
    Unit.MOLE_PERCENT: "mol %",
    Unit.GRAM_PER_CUBIC_METRE: "g/m\u00b3",
    Unit.PASCAL_SECOND: "Pa s",
    Unit.JOULE_PER_KILOGRAM: "J/kg",
    Unit.GRAM_PER_SQUARE_CENTIMETRE: "g/cm\u00b2",
    Unit.ATMOSPHERE: "atm",
    Unit.DECIBEL_MILLIWATT: "dBm",
    Unit.DECIBEL_MICROVOLT: "dB\u00b5V",
    Unit.DECIBEL: "dB",
    Unit.OTHER: "",
    Unit.COUNT: "",
}


def unit_symbol(unit: int) -> str:
    """The unit's symbol for display; empty for counts, other and unknown units."""
    return _SYMBOLS.get(unit, "")


def apply_scaler(raw: int, scaler: int) -> int | Decimal:
    """``raw * 10**scaler`` without rounding: an int for scaler >= 0, else an exact Decimal."""
    if scaler >= 0:
        factor: int = 10**scaler
        return raw * factor
    # A wide context: scaleb rounds to the context's precision, and 64-bit values need 20 digits.
    return Decimal(raw).scaleb(scaler, _EXACT)


class ScalerUnit(NamedTuple):
    """A register's ``scaler_unit``: value = raw * 10**scaler, in ``unit``."""

    scaler: int
    unit: int

    @classmethod
    def from_data(cls, data: Data) -> ScalerUnit:
        members = expect_structure(data, 2, "scaler_unit")
        scaler = expect_int(members[0], "scaler_unit scaler", DataTag.INTEGER)
        raw_unit = expect_int(members[1], "scaler_unit unit", DataTag.ENUM)
        try:
            unit: int = Unit(raw_unit)
        except ValueError:
            unit = raw_unit
        return cls(scaler, unit)

    def to_data(self) -> Data:
        if not -128 <= self.scaler <= 127 or not 0 <= self.unit <= 255:
            raise EncodeError(f"scaler_unit out of range: {self!r}")
        return Data(
            DataTag.STRUCTURE, (Data(DataTag.INTEGER, self.scaler), Data(DataTag.ENUM, int(self.unit)))
        )

    def scale(self, raw: int) -> int | Decimal:
        return apply_scaler(raw, self.scaler)

    @property
    def symbol(self) -> str:
        return unit_symbol(self.unit)

    def __str__(self) -> str:
        return f"x10^{self.scaler} {self.symbol}".rstrip()
