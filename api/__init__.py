"""The JSON API (/api/v1) on flask-smorest: blueprints, marshmallow schemas and the OpenAPI document."""
