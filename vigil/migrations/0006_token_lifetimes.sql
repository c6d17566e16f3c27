-- Filled in by the token work: token expiry and revocation.
SELECT 1;
