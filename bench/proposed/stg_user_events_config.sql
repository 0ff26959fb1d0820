{#- bench/proposed: staging events as a view (see bench/RESULTS.md). In the real project
    this belongs in stg_user_events.yml as `config: {materialized: view}`. -#}
{{ config(materialized='view') }}

