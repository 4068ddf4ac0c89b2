"""Unit factors used by the spectra and harmonic-analysis code.

Everything is derived from the exact SI constants in :mod:`painn_deploy.units`, except the
vacuum permittivity, which is not exact since the 2019 SI redefinition and is therefore
defined here (CODATA 2018 value; it is not in ``units.py``).

Internal units: time in ps, angular frequency in rad/ps, wavenumber in cm^-1, dipole in e*nm,
polarizability in nm^3 (polarizability *volume*, alpha_SI / (4 pi eps0)), mass in amu (g/mol),
energy in kJ/mol.  1 kJ/mol/(nm^2 amu) = 1 ps^-2 (see ``units.py``).
"""

from .. import units

# --- not in units.py ---------------------------------------------------------------------
#: Vacuum permittivity eps0 in F/m (CODATA 2018; measured, not exact, since 2019).
VACUUM_PERMITTIVITY_F_PER_M = 8.854_187_8128e-12

# --- derived ---------------------------------------------------------------------------------
#: Mass of 1 amu in kg, as 1 g/mol / N_A (the convention behind units.py's
#: "1 kJ/mol/(nm^2 amu) = 1 ps^-2"; differs from the CODATA dalton by 3.5e-10 relative).
AMU_KG = 1e-3 / units.AVOGADRO_PER_MOL
#: 1 e*nm in C*m.
E_NM_TO_C_M = units.ELEMENTARY_CHARGE_C * 1e-9
#: 1 ps in s.
PS_TO_S = 1e-12
#: 1 nm^3 in Angstrom^3.
NM3_TO_ANGSTROM3 = units.ANGSTROM_PER_NM**3
#: 1 nm^2 in Angstrom^2 (polarizability derivative nm^3/nm -> Angstrom^3/Angstrom).
NM2_TO_ANGSTROM2 = units.ANGSTROM_PER_NM**2
#: Angular frequency (rad/ps) per wavenumber (cm^-1): omega = 2 pi c nu~.
RAD_PER_PS_PER_CM1 = 1.0 / units.WAVENUMBER_PER_RAD_PER_PS
#: Second radiation constant h c / k_B in cm*K: beta*hbar*omega = c2 * nu~[cm^-1] / T[K].
SECOND_RADIATION_CM_K = units.PLANCK_J_S * units.SPEED_OF_LIGHT_CM_PER_S / units.BOLTZMANN_J_PER_K

#: Harmonic IR intensity per squared dipole derivative:
#: A = N_A / (12 eps0 c^2) |d mu / d Q|^2 (SI), Q mass-weighted normal coordinate.
#: This factor converts |d mu/dQ|^2 in e^2/amu to A in km/mol (about 974.86).
IR_KM_PER_MOL_PER_E2_PER_AMU = (
    units.AVOGADRO_PER_MOL
    * units.ELEMENTARY_CHARGE_C**2
    / (12.0 * VACUUM_PERMITTIVITY_F_PER_M * units.SPEED_OF_LIGHT_M_PER_S**2 * AMU_KG)
    / 1e3  # m/mol -> km/mol
)

#: 1 km mol^-1 (cm^-1)^-1 expressed in m^2/mol (1e3 m * 1e-2 m = 10 m^2).
KM_PER_MOL_PER_CM1_IN_M2_PER_MOL = 1e3 * 1e-2

#: 1 kJ/mol expressed in amu * Angstrom^2 / ps^2 (1 kJ/mol = 1 amu nm^2 ps^-2).
KJ_PER_MOL_IN_AMU_A2_PER_PS2 = units.ANGSTROM_PER_NM**2

__all__ = [
    "VACUUM_PERMITTIVITY_F_PER_M",
    "AMU_KG",
    "E_NM_TO_C_M",
    "PS_TO_S",
    "NM3_TO_ANGSTROM3",
    "NM2_TO_ANGSTROM2",
    "RAD_PER_PS_PER_CM1",
    "SECOND_RADIATION_CM_K",
    "IR_KM_PER_MOL_PER_E2_PER_AMU",
    "KM_PER_MOL_PER_CM1_IN_M2_PER_MOL",
    "KJ_PER_MOL_IN_AMU_A2_PER_PS2",
]
