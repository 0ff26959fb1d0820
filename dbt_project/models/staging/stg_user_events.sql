with

source as (

    select * from {{ source('raw', 'events') }}

),

renamed as (

    select
        try_cast(id as {{ dbt.type_bigint() }}) as event_id,
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(event_type as {{ dbt.type_string() }}) as event_type,
        {{ to_utc_timestamp("created_at") }} as event_at,
        cast(properties as {{ dbt.type_string() }}) as properties_json

    from source

    -- events the tracker could not classify carry no signal for any feature
    where event_type is not null

)

select * from renamed
