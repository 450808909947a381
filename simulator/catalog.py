"""The simulator's model parameters: plans the app ships, latent customer segments, cities.

These tables are the simulator's assumptions about the market. Population size,
seed and dates come from `simulate()` arguments, never from here.
"""

from __future__ import annotations

from dataclasses import dataclass

GST_RATE = 0.18  # Indian GST on broadband, added as taxAmount
YEARLY_FACTOR = 12 * 0.9  # the app prices a year as 12 months less 10 %
MAX_TENURE_DAYS = 3 * 365  # oldest contracts in the book are about three years old
LEAVER_DECLINE_DAYS = (14, 42)  # leavers wind down usage over 2–6 weeks
LEAVER_ACTIVITY_FLOOR = 0.2  # share of normal activity left on the day they cancel
GRACE_PERIOD_DAYS = 3  # the app's grace period after a non-renewed endDate
EXPIRE_AFTER_DAYS = 30  # suspended non-renewals are marked expired after this
NONRENEWAL_SHARE_OF_CHURN = 0.2  # non-renewals are a smaller, separate way of leaving
PAYMENT_RETRY_DAYS = 2  # the gateway retries a failed charge after this many days
MAX_PAYMENT_ATTEMPTS = 3
INVOICE_DUE_DAYS = 7


@dataclass(frozen=True)
class PlanSpec:
    name: str
    category: str  # residential | business | enterprise
    monthly: float  # INR per month
    download_mbps: float
    upload_mbps: float
    data_gb: float | None  # None: unlimited
    setup_fee: float
    target_audience: str  # the app's enum
    technology: str

    @property
    def yearly(self) -> float:
        return float(round(self.monthly * YEARLY_FACTOR))

    @property
    def cheap(self) -> bool:
        """Entry plans share contended access links: they suffer city incidents."""
        return self.monthly <= 799


PLANS: tuple[PlanSpec, ...] = (
    PlanSpec("Starter", "residential", 399, 40, 40, 200, 500, "light-users", "fiber"),
    PlanSpec("Basic", "residential", 499, 60, 60, 500, 0, "moderate-users", "fiber"),
    PlanSpec("Standard", "residential", 799, 100, 100, 1000, 0, "families", "fiber"),
    PlanSpec("Premium", "residential", 1199, 200, 200, None, 0, "streamers", "fiber"),
    PlanSpec("Ultra", "residential", 1499, 300, 300, None, 0, "gamers", "fiber"),
    PlanSpec("Business Basic", "business", 999, 100, 100, 1000, 0, "remote-workers", "fiber"),
    PlanSpec("Business Pro", "business", 1999, 300, 300, None, 0, "businesses", "fiber"),
    PlanSpec("Enterprise", "enterprise", 3999, 500, 500, None, 0, "businesses", "fiber"),
)
PLAN_INDEX = {plan.name: i for i, plan in enumerate(PLANS)}


@dataclass(frozen=True)
class SegmentSpec:
    name: str
    share: float
    elasticity: float  # the paper's price elasticity of demand
    monthly_gb: tuple[float, float]  # typical monthly download volume range
    plan_mix: dict[str, float]  # which plans this kind of customer buys
    peak_share: float  # share of sessions in the evening peak (19–23 h IST)
    session_weight: float  # relative sessions per day (normalised to the run's mean)
    devices: tuple[int, int]  # inclusive range of devices in the home
    login_rate: float  # app logins per day
    yearly_share: float  # share on yearly billing
    payment_stress: tuple[float, float]  # Beta(a, b) of the chance a charge fails


SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(
        "Premium Power Users",
        0.15,
        -0.3,
        (150, 260),
        {"Premium": 0.40, "Ultra": 0.40, "Business Pro": 0.15, "Enterprise": 0.05},
        0.45,
        2.0,
        (4, 7),
        0.25,
        0.35,
        (1.0, 40.0),
    ),
    SegmentSpec(
        "Price-Conscious Power",
        0.25,
        -1.8,
        (100, 150),
        {"Standard": 0.50, "Basic": 0.25, "Premium": 0.15, "Business Basic": 0.10},
        0.60,
        1.5,
        (3, 5),
        0.20,
        0.15,
        (1.5, 15.0),
    ),
    SegmentSpec(
        "Value-Seekers",
        0.30,
        -1.2,
        (30, 60),
        {"Standard": 0.45, "Basic": 0.35, "Business Basic": 0.10, "Premium": 0.10},
        0.50,
        1.0,
        (2, 4),
        0.15,
        0.25,
        (1.2, 20.0),
    ),
    SegmentSpec(
        "Budget Users",
        0.20,
        -2.0,
        (50, 80),
        {"Starter": 0.50, "Basic": 0.45, "Standard": 0.05},
        0.55,
        0.9,
        (1, 3),
        0.12,
        0.10,
        (2.0, 10.0),
    ),
    SegmentSpec(
        "Casual Premium",
        0.10,
        -0.5,
        (8, 30),
        {"Premium": 0.50, "Ultra": 0.25, "Standard": 0.15, "Business Basic": 0.10},
        0.35,
        0.5,
        (1, 3),
        0.10,
        0.40,
        (1.0, 60.0),
    ),
)


@dataclass(frozen=True)
class CitySpec:
    city: str
    state: str
    pin_prefix: str
    share: float
    latency_ms: float  # typical round trip to the core
    incident_rate: float  # chance per day of a network incident in the city


CITIES: tuple[CitySpec, ...] = (
    CitySpec("Mumbai", "Maharashtra", "400", 0.18, 14, 0.010),
    CitySpec("Delhi", "Delhi", "110", 0.17, 16, 0.012),
    CitySpec("Bengaluru", "Karnataka", "560", 0.15, 12, 0.008),
    CitySpec("Hyderabad", "Telangana", "500", 0.10, 15, 0.010),
    CitySpec("Chennai", "Tamil Nadu", "600", 0.09, 17, 0.012),
    CitySpec("Pune", "Maharashtra", "411", 0.08, 15, 0.010),
    CitySpec("Kolkata", "West Bengal", "700", 0.08, 22, 0.025),
    CitySpec("Ahmedabad", "Gujarat", "380", 0.06, 18, 0.015),
    CitySpec("Jaipur", "Rajasthan", "302", 0.05, 26, 0.030),
    CitySpec("Lucknow", "Uttar Pradesh", "226", 0.04, 30, 0.035),
)

# Latent churn drivers: weight of each standardised driver in the log hazard.
HAZARD_WEIGHTS = {
    "latency": 0.55,
    "packet_loss": 0.45,
    "payment_stress": 0.60,
    "price_pressure": 0.65,
    "noise": 0.40,  # what no data shows: life events, competitor offers
    "recent_ticket": 0.70,  # per ticket in the last 30 days (capped at 3)
    "recent_failure": 0.90,  # per failed charge in the last 30 days (capped at 3)
    "recent_incident": 0.50,  # an incident on the customer's line in the last 7 days
}
NEW_CONTRACT_BOOST = 2.0  # hazard multiplier excess for a brand-new contract...
NEW_CONTRACT_DAYS = 90.0  # ...decaying with this time constant (days)

BASE_TICKET_RATE = 1 / 250  # tickets per customer per day with nothing wrong
TICKET_RATE_PER_INCIDENT = 0.12  # extra chance of a ticket on an incident day
TICKET_RATE_PER_FAILURE = 0.25  # extra chance of a billing ticket on a failed charge
FEEDBACK_RATE = 1 / 120  # feedback forms per customer per day

# Enumerations and vocabularies the app uses (values must stay inside the app's enums).
DEVICE_TYPES = ("Desktop", "Mobile", "Tablet", "IoT", "Other")
DEVICE_TYPE_WEIGHTS = (0.25, 0.40, 0.15, 0.12, 0.08)
PAYMENT_METHODS = ("card", "upi", "netbanking", "wallet")  # payments.method (Razorpay words)
PAYMENT_METHOD_WEIGHTS = (0.35, 0.40, 0.15, 0.10)
# billings.paymentMethod.type knows no UPI or wallet: the app files those under "other".
BILLING_METHODS = ("credit_card", "other", "bank_transfer", "other")
HISTORY_METHODS = ("Card", "UPI", "Net Banking", "Wallet")  # paymentHistory[].paymentMethod
PAYMENT_ERROR_CODES = ("BAD_REQUEST_ERROR", "GATEWAY_ERROR", "SERVER_ERROR", "INSUFFICIENT_FUNDS")
CANCELLATION_REASONS = (
    ("Too expensive", "Found a cheaper plan elsewhere"),
    ("Poor service quality", "Frequent slowdowns in the evening"),
    ("Moving to another city", "Relocating, service not available"),
    ("Billing problems", "Repeated payment issues"),
    ("Not using enough", "We barely use the connection"),
    ("Switching provider", "Better offer from another ISP"),
)
TICKET_CATEGORIES = ("technical", "billing", "service", "account", "network", "general")
TICKET_PRIORITIES = ("low", "medium", "high", "urgent")
TICKET_OPEN_STATUSES = ("open", "assigned", "in-progress", "pending-customer")
TICKET_DONE_STATUSES = ("resolved", "closed")
SENTIMENTS = ("negative", "neutral", "positive")
FEEDBACK_TYPES = ("service", "support", "billing", "general")
FEEDBACK_SOURCES = ("web", "mobile", "email", "support")
# A comment per feedback type and sentiment (negative, neutral, positive).
FEEDBACK_COMMENTS = {
    "service": (
        "The connection keeps dropping in the evening.",
        "Speeds are fine most of the day.",
        "Fast and stable connection, very happy.",
    ),
    "support": (
        "Support took days to answer my ticket.",
        "Support solved my issue eventually.",
        "Support was quick and helpful.",
    ),
    "billing": (
        "I was charged twice this month.",
        "The invoice is clear enough.",
        "Billing is simple and on time.",
    ),
    "general": (
        "Not worth the price.",
        "It does the job.",
        "Great value for money.",
    ),
}

FIRST_NAMES = (
    "Aarav",
    "Vivaan",
    "Aditya",
    "Arjun",
    "Sai",
    "Reyansh",
    "Krishna",
    "Ishaan",
    "Rohan",
    "Kabir",
    "Ananya",
    "Diya",
    "Aadhya",
    "Saanvi",
    "Myra",
    "Kiara",
    "Priya",
    "Neha",
    "Pooja",
    "Riya",
    "Rahul",
    "Amit",
    "Sneha",
    "Vikram",
    "Meera",
    "Karan",
    "Divya",
    "Nikhil",
    "Tanvi",
    "Manish",
)
LAST_NAMES = (
    "Sharma",
    "Verma",
    "Gupta",
    "Iyer",
    "Reddy",
    "Nair",
    "Patel",
    "Shah",
    "Mehta",
    "Singh",
    "Kumar",
    "Das",
    "Bose",
    "Menon",
    "Rao",
    "Joshi",
    "Kulkarni",
    "Chopra",
    "Malhotra",
    "Kapoor",
)
STREET_NAMES = (
    "MG Road",
    "Park Street",
    "Station Road",
    "Church Street",
    "Ring Road",
    "Link Road",
    "Nehru Nagar",
    "Gandhi Marg",
    "Lake View Road",
    "Temple Street",
)
