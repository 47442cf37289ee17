-- The warehouse database beside Airflow's metadata database (same server, same role).
create database cart_recovery;
