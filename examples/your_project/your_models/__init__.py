"""A team's own training code: plain functions of (X, y, params), nothing of release_assets imported."""
