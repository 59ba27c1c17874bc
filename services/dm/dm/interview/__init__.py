"""Interview scoring: rubrics, evidence-backed scores and red flags, the report."""
