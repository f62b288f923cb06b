"""Server-rendered pages for billers, client doctors and collection agencies."""
