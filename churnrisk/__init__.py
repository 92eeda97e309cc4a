"""churnrisk: point-in-time churn risk, CLV and SaaS health metrics."""

__version__ = "0.1.0"
