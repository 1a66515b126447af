DROP TABLE external_identities;
DROP TABLE clients;
