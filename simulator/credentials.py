"""Passwords of the simulated accounts, so a tester can log in to the app with them.

The hashes are real bcrypt hashes ($2a$, cost 10, as bcryptjs writes them) of the
documented passwords, computed once (the simulator needs no bcrypt library). Customers
share one password but not one hash: each hash has its own salt.
"""

from __future__ import annotations

ADMIN_EMAILS = ("admin1@example.com", "admin2@example.com")
ADMIN_PASSWORD = "BroadbandX-Admin-2026"
ADMIN_PASSWORD_HASHES = (
    "$2a$10$nKbayBOACSQL7YvjZoXg6eF1XFLudvqOm/HRKSV/XzDc4L0uQLbrW",
    "$2a$10$ddN2g5VbjtzGod.JaTfdfuCeNFH.CShSVa88HX8JD5Ku2BIK9mzta",
)
CUSTOMER_PASSWORD = "BroadbandX-Customer-2026"
CUSTOMER_PASSWORD_HASHES = (
    "$2a$10$FeqDxeWJXwKn41lS1GegW.sYsudNr0LL3jpNpQblNMqbBf2gLErCC",
    "$2a$10$VzO0VR7L8YEApuCgHbxkieH8vepZVo2XM2cBk2/xAMuNdzEwig.Eu",
    "$2a$10$YMrCd7OT6fKhxO9W4gz6c.vdmhsNSKMWnJHoRegdj69BeAE95b3H2",
    "$2a$10$06id6eq7bY5GubRCp/5TluHiKrayuLsHFTUbStHCXzLe15pFOvEAK",
    "$2a$10$T.29606RRmteLHulI55Q6.wREv5JtB2.LWlfeI0MfIg8ddjbFu2vC",
    "$2a$10$ddXRrcdOGsMSd.20gXXHweN3yGFfEf02YV6HAFlQC1NlsJ6ANiswO",
    "$2a$10$BBQ9xpNkFnmg4LCvtRkcEuBq3ts.6aoGBqw4yt8vRfM/R9OpRKJdK",
    "$2a$10$jDqZ4nJ/hPXjmHVeNkIhcuO731NPOc/fL1bNTvJcuNToVpY3vRELK",
)
